//! PostgreSQL's binary wire formats, read straight into the values the code uses (and `jsonb`
//! written straight from them), without the intermediate values diesel's own decoders build.
//! Capabilities name these in `#[diesel(deserialize_as = …)]` and convert with `From`.

use std::fmt::{Debug, Display};
use std::str::FromStr;

use chrono::{DateTime, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Jsonb, Text, Timestamptz};
use serde::Serialize;
use serde_json::value::RawValue;

/// The version byte that starts PostgreSQL's binary `jsonb`.
const JSONB_VERSION: u8 = 1;

/// A `jsonb` column as read: its JSON text, checked to be one well-formed JSON value, kept
/// as text (no typed pass over it).
#[derive(Debug, FromSqlRow)]
pub struct JsonText(pub Box<RawValue>);

impl FromSql<Jsonb, Pg> for JsonText {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, json)) => Ok(JsonText(serde_json::from_slice(json)?)),
            _ => Err("unsupported jsonb encoding".into()),
        }
    }
}

/// A value written into a `jsonb` column, serialized straight into the wire format.
#[derive(Debug, AsExpression)]
#[diesel(sql_type = Jsonb)]
pub struct Json<T: Serialize + Debug>(pub T);

impl<T: Serialize + Debug> ToSql<Jsonb, Pg> for Json<T> {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        use std::io::Write;
        out.write_all(&[JSONB_VERSION])?;
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

/// A `text` column parsed as it is read; text that does not parse is a deserialization error
/// carrying the parser's message.
#[derive(Debug, FromSqlRow)]
pub struct Parsed<T>(pub T);

impl<T> FromSql<Text, Pg> for Parsed<T>
where
    T: FromStr,
    T::Err: Display,
{
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let text = std::str::from_utf8(value.as_bytes())?;
        text.parse()
            .map(Parsed)
            .map_err(|e: T::Err| e.to_string().into())
    }
}

/// A `timestamptz` column as read: PostgreSQL sends microseconds since 2000-01-01 UTC, turned
/// into an instant by one division instead of calendar arithmetic from the 2000 epoch (two per
/// order, 400 in a list of 200). Values chrono cannot hold (`infinity`) are errors.
#[derive(Debug, FromSqlRow)]
pub struct Timestamp(pub DateTime<Utc>);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

impl FromSql<Timestamptz, Pg> for Timestamp {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        let micros: [u8; 8] = value
            .as_bytes()
            .try_into()
            .map_err(|_| "timestamptz is not 8 bytes")?;
        i64::from_be_bytes(micros)
            .checked_add(PG_EPOCH_UNIX_MICROS)
            .and_then(DateTime::from_timestamp_micros)
            .map(Timestamp)
            .ok_or_else(|| "timestamptz out of range".into())
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> DateTime<Utc> {
        t.0
    }
}
