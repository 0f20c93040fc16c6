//! `tumble(timestamp, INTERVAL '1 minute')`: the start of the fixed, non-overlapping
//! window a timestamp falls in (windows aligned to the Unix epoch, as Kafka Streams'
//! tumbling windows are). In a bounded query it is an ordinary function; in a continuous
//! query, `GROUP BY tumble(...)` makes the query emit each window's rows once the window
//! closes.

use std::sync::Arc;

use datafusion::arrow::array::{Array, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{exec_err, plan_err, Result, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The function's name in SQL.
pub const TUMBLE: &str = "tumble";

/// The `tumble` function, to register in a session.
pub fn tumble_udf() -> ScalarUDF {
    ScalarUDF::from(Tumble {
        signature: Signature::user_defined(Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Tumble {
    signature: Signature,
}

/// An interval as milliseconds, when it is a whole number of them and has no months
/// (months have no fixed length).
pub(crate) fn interval_ms(value: &ScalarValue) -> Option<i64> {
    match value {
        ScalarValue::IntervalMonthDayNano(Some(v)) if v.months == 0 => {
            Some(i64::from(v.days) * 86_400_000 + v.nanoseconds.div_euclid(1_000_000))
        }
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i64::from(v.days) * 86_400_000 + i64::from(v.milliseconds))
        }
        _ => None,
    }
}

/// The window size of a `tumble(column, INTERVAL ...)` call, in milliseconds.
pub(crate) fn tumble_size(expr: &Expr) -> Option<i64> {
    let expr = match expr {
        Expr::Alias(alias) => alias.expr.as_ref(),
        other => other,
    };
    let Expr::ScalarFunction(call) = expr else {
        return None;
    };
    if call.name() != TUMBLE {
        return None;
    }
    match call.args.get(1) {
        Some(Expr::Literal(value, _)) => interval_ms(value),
        _ => None,
    }
}

impl ScalarUDFImpl for Tumble {
    fn name(&self) -> &str {
        TUMBLE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match arg_types {
            [DataType::Timestamp(_, zone), DataType::Interval(unit)] => Ok(vec![
                DataType::Timestamp(TimeUnit::Millisecond, zone.clone()),
                DataType::Interval(*unit),
            ]),
            _ => plan_err!(
                "tumble(timestamp, INTERVAL '...') takes a timestamp and an interval, not {arg_types:?}"
            ),
        }
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(DataType::Timestamp(_, zone)) => {
                Ok(DataType::Timestamp(TimeUnit::Millisecond, zone.clone()))
            }
            _ => plan_err!("tumble's first argument is a timestamp"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [timestamps, size] = args.args.as_slice() else {
            return exec_err!("tumble takes two arguments");
        };
        let size = match size {
            ColumnarValue::Scalar(value) => interval_ms(value),
            ColumnarValue::Array(_) => None,
        };
        let Some(size) = size.filter(|s| *s > 0) else {
            return exec_err!(
                "tumble's size must be a constant positive interval of days, hours, minutes, seconds or milliseconds"
            );
        };
        let zone = match args.return_type() {
            DataType::Timestamp(_, zone) => zone.clone(),
            _ => None,
        };
        let start = |v: i64| v - v.rem_euclid(size);
        match timestamps {
            ColumnarValue::Scalar(value) => {
                let value = value.cast_to(&DataType::Timestamp(TimeUnit::Millisecond, None))?;
                let ScalarValue::TimestampMillisecond(v, _) = value else {
                    return exec_err!("tumble's first argument is a timestamp");
                };
                Ok(ColumnarValue::Scalar(ScalarValue::TimestampMillisecond(
                    v.map(start),
                    zone,
                )))
            }
            ColumnarValue::Array(array) => {
                let array = cast(
                    array.as_ref(),
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )?;
                let Some(millis) = array.as_any().downcast_ref::<TimestampMillisecondArray>()
                else {
                    return exec_err!("tumble's first argument is a timestamp");
                };
                let starts: TimestampMillisecondArray = millis.unary(start);
                Ok(ColumnarValue::Array(Arc::new(
                    starts.with_timezone_opt(zone),
                )))
            }
        }
    }
}
