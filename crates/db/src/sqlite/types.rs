//! SQLite declared types to value kinds, following SQLite's affinity rules
//! (https://sqlite.org/datatype3.html#determination_of_column_affinity) with
//! the common date, time, boolean, JSON and UUID spellings recognised.

use dbbridge_protocol::query::ValueKind;
use rusqlite::types::ValueRef;

/// The kind of a column with this declared type; `None` when it has none
/// (an expression), in which case the first value decides.
pub fn kind_of_decl(decl: Option<&str>) -> Option<ValueKind> {
    let decl = decl?.trim();
    if decl.is_empty() {
        return None;
    }
    let upper = decl.to_ascii_uppercase();
    let base = upper.split('(').next().unwrap_or("").trim();
    Some(match base {
        "BOOL" | "BOOLEAN" => ValueKind::Bool,
        "DATE" => ValueKind::Date,
        "DATETIME" | "TIMESTAMP" => ValueKind::Timestamp,
        "TIME" => ValueKind::Time,
        "JSON" | "JSONB" => ValueKind::Json,
        "UUID" => ValueKind::Uuid,
        "DECIMAL" | "NUMERIC" | "MONEY" => ValueKind::Decimal,
        _ if upper.contains("INT") => ValueKind::Bigint,
        _ if upper.contains("CHAR") || upper.contains("CLOB") || upper.contains("TEXT") => {
            ValueKind::Text
        }
        _ if upper.contains("BLOB") => ValueKind::Bytes,
        _ if upper.contains("REAL") || upper.contains("FLOA") || upper.contains("DOUB") => {
            ValueKind::Float
        }
        _ => ValueKind::Other,
    })
}

/// The kind a value's storage class suggests (for expression columns).
pub fn kind_of_value(value: ValueRef<'_>) -> ValueKind {
    match value {
        ValueRef::Null => ValueKind::Other,
        ValueRef::Integer(_) => ValueKind::Bigint,
        ValueRef::Real(_) => ValueKind::Float,
        ValueRef::Text(_) => ValueKind::Text,
        ValueRef::Blob(_) => ValueKind::Bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity() {
        assert_eq!(kind_of_decl(Some("INTEGER")), Some(ValueKind::Bigint));
        assert_eq!(
            kind_of_decl(Some("unsigned big int")),
            Some(ValueKind::Bigint)
        );
        assert_eq!(kind_of_decl(Some("VARCHAR(20)")), Some(ValueKind::Text));
        assert_eq!(kind_of_decl(Some("blob")), Some(ValueKind::Bytes));
        assert_eq!(
            kind_of_decl(Some("DOUBLE PRECISION")),
            Some(ValueKind::Float)
        );
        assert_eq!(
            kind_of_decl(Some("NUMERIC(12,2)")),
            Some(ValueKind::Decimal)
        );
        assert_eq!(kind_of_decl(Some("boolean")), Some(ValueKind::Bool));
        assert_eq!(kind_of_decl(Some("DATETIME")), Some(ValueKind::Timestamp));
        assert_eq!(kind_of_decl(None), None);
    }
}
