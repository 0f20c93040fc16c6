//! Java `.properties` files, as Kafka Connect's worker and connector configs are written:
//! `key=value` or `key: value` lines, `#` and `!` comments, a trailing `\` continuing a
//! line.

use strom_connect_api::ConfigMap;

use crate::RuntimeError;

/// The keys and values of a properties file's text.
///
/// # Errors
/// [`RuntimeError::Config`] for a line without `=` or `:` (naming the line).
pub fn parse_properties(text: &str) -> Result<ConfigMap, RuntimeError> {
    let mut config = ConfigMap::new();
    let mut logical = String::new();
    let mut first_line = 0;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_start();
        if logical.is_empty() {
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            first_line = number + 1;
        }
        match line.strip_suffix('\\') {
            Some(continued) => {
                logical.push_str(continued);
                continue;
            }
            None => logical.push_str(line),
        }
        let entry = std::mem::take(&mut logical);
        let split = entry
            .find(['=', ':'])
            .ok_or_else(|| RuntimeError::Config(format!("line {first_line}: no = in {entry:?}")))?;
        let key = entry[..split].trim();
        if key.is_empty() {
            return Err(RuntimeError::Config(format!("line {first_line}: no key")));
        }
        config.insert(key.to_owned(), entry[split + 1..].trim().to_owned());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_comments_and_continuations() {
        let text = "# worker\nbootstrap.servers=localhost:9092\n! also a comment\n\n  \
                    key.converter : org.apache.kafka.connect.json.JsonConverter\n\
                    topics=a,\\\n    b\nempty=\n";
        let config = parse_properties(text).unwrap();
        assert_eq!(config["bootstrap.servers"], "localhost:9092");
        assert_eq!(
            config["key.converter"],
            "org.apache.kafka.connect.json.JsonConverter"
        );
        assert_eq!(config["topics"], "a,b");
        assert_eq!(config["empty"], "");
        let err = parse_properties("a=1\nnonsense\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }
}
