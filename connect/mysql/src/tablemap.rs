//! A table's schema as a row event's table map describes it. With
//! `binlog_row_metadata=FULL` the map names every column and carries signedness,
//! character sets, ENUM and SET labels and the primary key, so each row is read with the
//! schema in force when it was written, however far the reader lags behind DDL. What
//! the map cannot tell (MariaDB's JSON is LONGTEXT, declared type names) comes from the
//! schema known by name.

use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::ColumnType;

use crate::schema::{Column, Kind, TableSchema};

/// The binary "character set".
const BINARY: u16 = 63;
/// latin1's collations.
const LATIN1: [u16; 8] = [5, 8, 15, 31, 47, 48, 49, 94];

/// What the map's optional metadata says, column by column.
#[derive(Default)]
struct Metadata {
    names: Vec<String>,
    /// Unsignedness of numeric columns, in numeric-column order.
    unsigned: Vec<bool>,
    /// Character sets of character columns, in character-column order.
    charsets: Vec<u16>,
    /// Labels of ENUM columns, then of SET columns, in their order.
    enums: Vec<Vec<String>>,
    sets: Vec<Vec<String>>,
    key: Vec<usize>,
}

fn is_numeric(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_DECIMAL
    )
}

/// Columns the charset metadata counts (MariaDB counts GEOMETRY too).
fn is_character(t: ColumnType, mariadb: bool) -> bool {
    use ColumnType::*;
    (mariadb && t == MYSQL_TYPE_GEOMETRY)
        || matches!(
            t,
            MYSQL_TYPE_STRING
                | MYSQL_TYPE_VAR_STRING
                | MYSQL_TYPE_VARCHAR
                | MYSQL_TYPE_BLOB
                | MYSQL_TYPE_TINY_BLOB
                | MYSQL_TYPE_MEDIUM_BLOB
                | MYSQL_TYPE_LONG_BLOB
        )
}

fn metadata(tme: &TableMapEvent<'_>, types: &[ColumnType], mariadb: bool) -> Metadata {
    let mut m = Metadata::default();
    let characters = types.iter().filter(|t| is_character(**t, mariadb)).count();
    for field in tme.iter_optional_meta() {
        let Ok(field) = field else {
            break;
        };
        match field {
            OptionalMetadataField::ColumnName(names) => {
                m.names = names
                    .iter_names()
                    .filter_map(Result::ok)
                    .map(|n| n.name().into_owned())
                    .collect();
            }
            OptionalMetadataField::Signedness(bits) => {
                m.unsigned = bits.iter().map(|b| *b).collect();
            }
            OptionalMetadataField::DefaultCharset(d) => {
                m.charsets = vec![d.default_charset(); characters];
                for nd in d.iter_non_default().filter_map(Result::ok) {
                    if let Some(c) = usize::try_from(nd.column_index())
                        .ok()
                        .and_then(|i| m.charsets.get_mut(i))
                    {
                        *c = nd.charset();
                    }
                }
            }
            OptionalMetadataField::ColumnCharset(c) => {
                m.charsets = c.iter_charsets().filter_map(Result::ok).collect();
            }
            OptionalMetadataField::EnumStrValue(e) => {
                m.enums = e
                    .iter_values()
                    .filter_map(Result::ok)
                    .map(|v| v.values().iter().map(|s| s.value().into_owned()).collect())
                    .collect();
            }
            OptionalMetadataField::SetStrValue(s) => {
                m.sets = s
                    .iter_values()
                    .filter_map(Result::ok)
                    .map(|v| v.values().iter().map(|s| s.value().into_owned()).collect())
                    .collect();
            }
            OptionalMetadataField::SimplePrimaryKey(k) => {
                m.key = k
                    .iter_indexes()
                    .filter_map(Result::ok)
                    .filter_map(|i| usize::try_from(i).ok())
                    .collect();
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(k) => {
                m.key = k
                    .iter_keys()
                    .filter_map(Result::ok)
                    .filter_map(|k| usize::try_from(k.column_index()).ok())
                    .collect();
            }
            _ => {}
        }
    }
    m
}

/// The schema of the rows of `tme`, or `None` when the map does not name its columns
/// (`binlog_row_metadata` is not FULL). `known` is the schema known for the table.
pub fn schema_of(
    tme: &TableMapEvent<'_>,
    known: Option<&TableSchema>,
    mariadb: bool,
) -> Option<TableSchema> {
    let count = usize::try_from(tme.columns_count()).ok()?;
    let types: Vec<ColumnType> = (0..count)
        .map(|i| tme.get_column_type(i).ok().flatten())
        .collect::<Option<_>>()?;
    let m = metadata(tme, &types, mariadb);
    if m.names.len() != count {
        return None;
    }
    let nulls = tme.null_bitmask();
    let (mut numeric, mut character, mut enums, mut sets) = (0, 0, 0, 0);
    let mut columns = Vec::with_capacity(count);
    for (i, (t, name)) in types.iter().zip(&m.names).enumerate() {
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let unsigned = if is_numeric(*t) {
            numeric += 1;
            m.unsigned.get(numeric - 1).copied().unwrap_or(false)
        } else {
            false
        };
        let charset = if is_character(*t, mariadb) {
            character += 1;
            m.charsets.get(character - 1).copied()
        } else {
            None
        };
        let same = known.and_then(|k| k.columns.iter().find(|c| &c.name == name));
        let byte = |j: usize| u32::from(meta.get(j).copied().unwrap_or(0));
        use ColumnType::*;
        let kind = match t {
            MYSQL_TYPE_TINY => Kind::Int { bits: 8, unsigned },
            MYSQL_TYPE_SHORT => Kind::Int { bits: 16, unsigned },
            MYSQL_TYPE_INT24 => Kind::Int { bits: 24, unsigned },
            MYSQL_TYPE_LONG => Kind::Int { bits: 32, unsigned },
            MYSQL_TYPE_LONGLONG => Kind::Int { bits: 64, unsigned },
            MYSQL_TYPE_FLOAT => Kind::Float,
            MYSQL_TYPE_DOUBLE => Kind::Double,
            MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DECIMAL => Kind::Decimal {
                precision: byte(0),
                scale: byte(1),
            },
            MYSQL_TYPE_BIT => Kind::Bit(byte(1) * 8 + byte(0)),
            MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
            MYSQL_TYPE_DATETIME => Kind::DateTime(0),
            MYSQL_TYPE_DATETIME2 => Kind::DateTime(byte(0)),
            MYSQL_TYPE_TIMESTAMP => Kind::Timestamp(0),
            MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp(byte(0)),
            MYSQL_TYPE_TIME => Kind::Time(0),
            MYSQL_TYPE_TIME2 => Kind::Time(byte(0)),
            MYSQL_TYPE_YEAR => Kind::Year,
            MYSQL_TYPE_JSON => Kind::Json,
            MYSQL_TYPE_ENUM => {
                enums += 1;
                match m.enums.get(enums - 1) {
                    Some(labels) => Kind::Enum(labels.clone()),
                    None => same
                        .map(|c| c.kind.clone())
                        .filter(|k| matches!(k, Kind::Enum(_)))?,
                }
            }
            MYSQL_TYPE_SET => {
                sets += 1;
                match m.sets.get(sets - 1) {
                    Some(labels) => Kind::Set(labels.clone()),
                    None => same
                        .map(|c| c.kind.clone())
                        .filter(|k| matches!(k, Kind::Set(_)))?,
                }
            }
            t if is_character(*t, false) => match (charset, same.map(|c| &c.kind)) {
                (_, Some(Kind::Json)) => Kind::Json,
                (Some(BINARY), _) => Kind::Binary,
                (Some(c), _) => Kind::Text {
                    latin1: LATIN1.contains(&c),
                },
                (None, Some(k @ (Kind::Text { .. } | Kind::Binary))) => k.clone(),
                (None, _) => Kind::Binary,
            },
            _ => Kind::Binary,
        };
        let type_name = same.filter(|c| c.kind == kind).map_or_else(
            || {
                format!("{t:?}")
                    .trim_start_matches("MYSQL_TYPE_")
                    .to_ascii_lowercase()
            },
            |c| c.type_name.clone(),
        );
        columns.push(Column {
            name: name.clone(),
            kind,
            nullable: nulls.get(i).is_some_and(|b| *b),
            type_name,
        });
    }
    let key = if m.key.is_empty() {
        known
            .map(|k| {
                k.key
                    .iter()
                    .filter_map(|i| k.columns.get(*i))
                    .filter_map(|c| columns.iter().position(|n| n.name == c.name))
                    .collect()
            })
            .unwrap_or_default()
    } else {
        m.key
    };
    Some(TableSchema {
        db: tme.database_name().into_owned(),
        table: tme.table_name().into_owned(),
        columns,
        key,
    })
}
