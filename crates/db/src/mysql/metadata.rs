//! MySQL/MariaDB metadata from information_schema, set-based: one query per
//! kind of object (schemas; tables of a schema; a table's columns, indexes,
//! foreign keys), never one per table.

use super::query_error;
use super::wire::Conn;
use crate::DbError;
use dbbridge_protocol::metadata::{
    ColumnDescription, ForeignKey, IndexInfo, PrimaryKey, SchemaInfo, TableDescription, TableInfo,
    TableType,
};
use dbbridge_protocol::query::ValueKind;

const SYSTEM: &[&str] = &["information_schema", "mysql", "performance_schema", "sys"];

pub async fn list_schemas(conn: &mut Conn) -> Result<Vec<SchemaInfo>, DbError> {
    let names: Vec<String> = conn
        .query_rows("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
        .await
        .map_err(query_error)?;
    let mut out: Vec<SchemaInfo> = names
        .into_iter()
        .map(|name| SchemaInfo {
            is_system: SYSTEM.contains(&name.to_ascii_lowercase().as_str()),
            name,
        })
        .collect();
    out.sort_by_key(|s| s.is_system);
    Ok(out)
}

fn table_type(kind: &str) -> TableType {
    match kind {
        "VIEW" | "SYSTEM VIEW" => TableType::View,
        _ => TableType::Table,
    }
}

pub async fn list_tables(
    conn: &mut Conn,
    schema: Option<String>,
) -> Result<Vec<TableInfo>, DbError> {
    type TableRow = (String, String, String, Option<u64>, Option<String>);
    let rows: Vec<TableRow> = conn
        .exec_rows(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS, TABLE_COMMENT \
             FROM information_schema.TABLES \
             WHERE (? IS NULL AND TABLE_SCHEMA NOT IN ('information_schema', 'mysql', 'performance_schema', 'sys')) \
                OR TABLE_SCHEMA = ? \
             ORDER BY TABLE_SCHEMA, TABLE_NAME",
            (schema.clone(), schema),
        )
        .await
        .map_err(query_error)?;
    Ok(rows
        .into_iter()
        .map(|(schema, name, kind, rows, comment)| {
            let table_type = table_type(&kind);
            TableInfo {
                schema,
                name,
                row_estimate: if table_type == TableType::View {
                    None
                } else {
                    rows
                },
                // Views carry the comment "VIEW"; an empty comment is none.
                comment: comment.filter(|c| !c.is_empty() && table_type != TableType::View),
                table_type,
                partitioned: false,
            }
        })
        .collect())
}

/// The protocol kind of a column from information_schema's DATA_TYPE.
fn kind_of(data_type: &str, column_type: &str) -> ValueKind {
    match data_type {
        "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "year" => ValueKind::Int,
        "bigint" => ValueKind::Bigint,
        "decimal" | "numeric" => ValueKind::Decimal,
        "float" | "double" | "real" => ValueKind::Float,
        "bit" => {
            let bits: u32 = column_type
                .trim_start_matches("bit(")
                .trim_end_matches(')')
                .parse()
                .unwrap_or(64);
            if bits <= 32 {
                ValueKind::Int
            } else {
                ValueKind::Bigint
            }
        }
        "date" => ValueKind::Date,
        "time" => ValueKind::Time,
        "datetime" | "timestamp" => ValueKind::Timestamp,
        "json" => ValueKind::Json,
        "enum" => ValueKind::Enum,
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
            ValueKind::Bytes
        }
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" | "set" => {
            ValueKind::Text
        }
        _ => ValueKind::Other,
    }
}

type ColumnRow = (
    String,
    u32,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
);

pub async fn describe_table(
    conn: &mut Conn,
    mariadb: bool,
    schema: &str,
    table: &str,
) -> Result<TableDescription, DbError> {
    let found: Option<String> = conn
        .exec_rows(
            "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (schema, table),
        )
        .await
        .map_err(query_error)?
        .into_iter()
        .next();
    let Some(kind) = found else {
        return Err(DbError::invalid_input(format!(
            "no table or view {table:?} in schema {schema:?}"
        )));
    };
    let rows: Vec<ColumnRow> = conn
        .exec_rows(
            "SELECT COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, \
                    EXTRA, COLUMN_COMMENT, GENERATION_EXPRESSION \
             FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(query_error)?;
    let columns = rows
        .into_iter()
        .map(
            |(
                name,
                ordinal,
                column_type,
                data_type,
                nullable,
                default,
                extra,
                comment,
                generation,
            )| {
                let extra = extra.to_ascii_lowercase();
                let generated =
                    if extra.contains("stored generated") || extra.contains("persistent") {
                        Some("stored".to_string())
                    } else if extra.contains("virtual generated") || extra == "virtual" {
                        Some("virtual".to_string())
                    } else {
                        generation
                            .filter(|g| !g.is_empty())
                            .map(|_| "virtual".to_string())
                    };
                ColumnDescription {
                    kind: kind_of(&data_type.to_ascii_lowercase(), &column_type),
                    name,
                    ordinal,
                    db_type: column_type,
                    nullable: nullable == "YES",
                    // MariaDB writes a missing default as the text NULL.
                    default: default.filter(|d| d != "NULL" && generated.is_none()),
                    auto_increment: extra.contains("auto_increment"),
                    comment: Some(comment).filter(|c| !c.is_empty()),
                    generated,
                    hidden: false,
                }
            },
        )
        .collect();

    // MySQL 8 has functional index parts, whose text is in EXPRESSION; MariaDB has no such column.
    let expression = if mariadb { "NULL" } else { "EXPRESSION" };
    type IndexRow = (
        String,
        u8,
        u32,
        Option<String>,
        Option<u64>,
        String,
        Option<String>,
    );
    let index_rows: Vec<IndexRow> = conn
        .exec_rows(
            &format!(
                "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, SUB_PART, INDEX_TYPE, {expression} \
                 FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
                 ORDER BY INDEX_NAME = 'PRIMARY' DESC, INDEX_NAME, SEQ_IN_INDEX"
            ),
            (schema, table),
        )
        .await
        .map_err(query_error)?;
    let mut indexes: Vec<IndexInfo> = Vec::new();
    for (name, non_unique, _, column, sub_part, method, expression) in index_rows {
        if indexes.last().is_none_or(|i| i.name != name) {
            indexes.push(IndexInfo {
                primary: name == "PRIMARY",
                name: name.clone(),
                columns: Vec::new(),
                unique: non_unique == 0,
                method: Some(method.to_ascii_lowercase()),
                predicate: None,
            });
        }
        // A prefix index column is written `col(10)`; a functional part (MySQL 8) by its expression.
        let column = match (column, sub_part) {
            (Some(c), Some(n)) => format!("{c}({n})"),
            (Some(c), None) => c,
            (None, _) => expression.unwrap_or_else(|| "(expression)".to_string()),
        };
        if let Some(last) = indexes.last_mut() {
            last.columns.push(column);
        }
    }
    let primary_key = indexes.iter().find(|i| i.primary).map(|i| PrimaryKey {
        name: Some(i.name.clone()),
        columns: i.columns.clone(),
    });

    type KeyRow = (String, String, String, String, String, String, String);
    let key_rows: Vec<KeyRow> = conn
        .exec_rows(
            "SELECT k.CONSTRAINT_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_SCHEMA, k.REFERENCED_TABLE_NAME, \
                    k.REFERENCED_COLUMN_NAME, r.UPDATE_RULE, r.DELETE_RULE \
             FROM information_schema.KEY_COLUMN_USAGE k \
             JOIN information_schema.REFERENTIAL_CONSTRAINTS r \
               ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME \
              AND r.TABLE_NAME = k.TABLE_NAME \
             WHERE k.TABLE_SCHEMA = ? AND k.TABLE_NAME = ? AND k.REFERENCED_TABLE_NAME IS NOT NULL \
             ORDER BY k.CONSTRAINT_NAME, k.ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(query_error)?;
    let mut foreign_keys: Vec<ForeignKey> = Vec::new();
    for (name, column, ref_schema, ref_table, ref_column, on_update, on_delete) in key_rows {
        if foreign_keys
            .last()
            .is_none_or(|k| k.name.as_deref() != Some(name.as_str()))
        {
            foreign_keys.push(ForeignKey {
                name: Some(name),
                columns: Vec::new(),
                referenced_schema: ref_schema,
                referenced_table: ref_table,
                referenced_columns: Vec::new(),
                on_update,
                on_delete,
            });
        }
        if let Some(last) = foreign_keys.last_mut() {
            last.columns.push(column);
            last.referenced_columns.push(ref_column);
        }
    }

    Ok(TableDescription {
        schema: schema.to_string(),
        name: table.to_string(),
        table_type: table_type(&kind),
        columns,
        primary_key,
        foreign_keys,
        indexes,
    })
}
