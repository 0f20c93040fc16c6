//! Serdes: how keys and values become bytes at a topology's edges (sources read, sinks
//! write) and back. Between processors records stay typed.
//!
//! ```
//! use strom_streams::serde::{Json, Serde, StringSerde};
//!
//! #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
//! struct Order { id: u32, total: f64 }
//!
//! let json = Json::<Order>::new();
//! let bytes = json.serialize("orders", &Order { id: 7, total: 12.5 })?.unwrap();
//! assert_eq!(json.deserialize("orders", Some(&bytes))?, Order { id: 7, total: 12.5 });
//! assert_eq!(StringSerde.deserialize("t", Some(b"hi"))?, "hi");
//! # Ok::<(), strom_streams::SerdeError>(())
//! ```

use std::marker::PhantomData;

use bytes::Bytes;

/// Why a key or value could not be (de)serialized.
#[derive(Debug, thiserror::Error)]
#[error("{topic}: {reason}")]
pub struct SerdeError {
    /// The topic of the record.
    pub topic: String,
    /// What went wrong.
    pub reason: String,
}

impl SerdeError {
    fn new(topic: &str, reason: impl Into<String>) -> Self {
        SerdeError {
            topic: topic.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Turns `T` into bytes and back; `None` bytes are Kafka's null (a tombstone value, a
/// record without key).
pub trait Serde<T>: Send + Sync + 'static {
    /// The bytes of `value` for `topic` (`None` for null).
    ///
    /// # Errors
    /// When `value` cannot be written in this format.
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, SerdeError>;

    /// The value of `bytes` read from `topic`.
    ///
    /// # Errors
    /// When the bytes are not this format (or null where a value is required).
    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError>;
}

/// Raw bytes, null as empty.
#[derive(Clone, Copy, Debug, Default)]
pub struct BytesSerde;

impl Serde<Bytes> for BytesSerde {
    fn serialize(&self, _topic: &str, value: &Bytes) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(value.clone()))
    }

    fn deserialize(&self, _topic: &str, bytes: Option<&[u8]>) -> Result<Bytes, SerdeError> {
        Ok(bytes.map(Bytes::copy_from_slice).unwrap_or_default())
    }
}

/// UTF-8 text; null is refused.
#[derive(Clone, Copy, Debug, Default)]
pub struct StringSerde;

impl Serde<String> for StringSerde {
    fn serialize(&self, _topic: &str, value: &String) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(value.as_bytes())))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<String, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new(topic, "null where text was expected"))?;
        String::from_utf8(bytes.to_vec()).map_err(|e| SerdeError::new(topic, e.to_string()))
    }
}

/// Nullable anything: `None` is Kafka's null, everything else goes through `S`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Nullable<S>(pub S);

impl<T: 'static, S: Serde<T>> Serde<Option<T>> for Nullable<S> {
    fn serialize(&self, topic: &str, value: &Option<T>) -> Result<Option<Bytes>, SerdeError> {
        match value {
            Some(v) => self.0.serialize(topic, v),
            None => Ok(None),
        }
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<Option<T>, SerdeError> {
        bytes
            .map(|b| self.0.deserialize(topic, Some(b)))
            .transpose()
    }
}

/// Big-endian 64-bit integers, as Kafka's `LongSerde`.
#[derive(Clone, Copy, Debug, Default)]
pub struct I64Serde;

impl Serde<i64> for I64Serde {
    fn serialize(&self, _topic: &str, value: &i64) -> Result<Option<Bytes>, SerdeError> {
        Ok(Some(Bytes::copy_from_slice(&value.to_be_bytes())))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<i64, SerdeError> {
        let bytes =
            bytes.ok_or_else(|| SerdeError::new(topic, "null where a long was expected"))?;
        let array: [u8; 8] = bytes
            .try_into()
            .map_err(|_| SerdeError::new(topic, format!("{} bytes are not a long", bytes.len())))?;
        Ok(i64::from_be_bytes(array))
    }
}

/// JSON through serde (`serde_json`).
pub struct Json<T>(PhantomData<fn() -> T>);

impl<T> Json<T> {
    /// The JSON serde of `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Json::new()
    }
}

impl<T> Serde<T> for Json<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, topic: &str, value: &T) -> Result<Option<Bytes>, SerdeError> {
        serde_json::to_vec(value)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| SerdeError::new(topic, e.to_string()))
    }

    fn deserialize(&self, topic: &str, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = bytes.ok_or_else(|| SerdeError::new(topic, "null where JSON was expected"))?;
        serde_json::from_slice(bytes).map_err(|e| SerdeError::new(topic, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_bytes_are_errors_naming_the_topic() {
        let err = StringSerde
            .deserialize("words", Some(&[0xff, 0xfe]))
            .unwrap_err();
        assert_eq!(err.topic, "words");
        assert!(I64Serde.deserialize("counts", Some(b"abc")).is_err());
        assert!(I64Serde.deserialize("counts", None).is_err());
        assert!(Json::<u32>::new().deserialize("j", Some(b"{")).is_err());
        assert_eq!(Nullable(StringSerde).deserialize("n", None).unwrap(), None);
        let long = I64Serde.serialize("c", &-2).unwrap().unwrap();
        assert_eq!(I64Serde.deserialize("c", Some(&long)).unwrap(), -2);
    }
}
