//! Postgres metadata from the system catalogs, set-based: one query per kind
//! of object (schemas; tables of a schema; a table's columns, indexes, foreign
//! keys), never one query per table or per column.

use dbbridge_protocol::metadata::{
    ColumnDescription, ForeignKey, IndexInfo, PrimaryKey, SchemaInfo, TableDescription, TableInfo,
    TableType,
};
use dbbridge_protocol::query::ValueKind;
use tokio_postgres::Client;
use tokio_postgres::types::{Kind, Type};

use super::query_error;
use super::values::encoder_for;
use crate::DbError;

const SYSTEM_SCHEMA: &str = "(n.nspname IN ('pg_catalog', 'information_schema', 'pg_toast') \
     OR n.nspname LIKE 'pg\\_temp\\_%' OR n.nspname LIKE 'pg\\_toast\\_temp\\_%')";

pub async fn list_schemas(client: &Client) -> Result<Vec<SchemaInfo>, DbError> {
    // Other sessions' temporary schemas are noise; this session's own is kept.
    let sql = format!(
        "SELECT n.nspname::text, {SYSTEM_SCHEMA} AS is_system \
         FROM pg_catalog.pg_namespace n \
         WHERE n.nspname NOT LIKE 'pg\\_temp\\_%' AND n.nspname NOT LIKE 'pg\\_toast\\_temp\\_%' \
            OR n.oid = pg_catalog.pg_my_temp_schema() \
         ORDER BY is_system, n.nspname"
    );
    let rows = client.query(&sql, &[]).await.map_err(query_error)?;
    Ok(rows
        .iter()
        .map(|r| SchemaInfo {
            name: r.get(0),
            is_system: r.get(1),
        })
        .collect())
}

fn table_type(relkind: i8) -> TableType {
    match relkind as u8 {
        b'v' => TableType::View,
        b'm' => TableType::MaterializedView,
        b'f' => TableType::ForeignTable,
        _ => TableType::Table,
    }
}

/// Tables, views, materialized views, foreign and partitioned tables of one
/// schema, or of every non-system schema.
pub async fn list_tables(
    client: &Client,
    schema: Option<String>,
) -> Result<Vec<TableInfo>, DbError> {
    let sql = format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind, \
                CASE WHEN c.relkind IN ('v') OR c.reltuples < 0 THEN NULL ELSE c.reltuples::int8 END, \
                d.description \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_description d \
           ON d.objoid = c.oid AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = 0 \
         WHERE c.relkind IN ('r', 'v', 'm', 'f', 'p') \
           AND CASE WHEN $1::text IS NULL THEN NOT {SYSTEM_SCHEMA} ELSE n.nspname = $1::text END \
         ORDER BY n.nspname, c.relname"
    );
    let rows = client.query(&sql, &[&schema]).await.map_err(query_error)?;
    Ok(rows
        .iter()
        .map(|r| {
            let relkind: i8 = r.get(2);
            TableInfo {
                schema: r.get(0),
                name: r.get(1),
                table_type: table_type(relkind),
                row_estimate: r.get::<_, Option<i64>>(3).map(|n| n.max(0) as u64),
                comment: r.get(4),
                partitioned: relkind as u8 == b'p',
            }
        })
        .collect())
}

/// The protocol kind of a column from its catalog type.
fn catalog_kind(oid: u32, typtype: i8, category: i8, base: u32) -> ValueKind {
    match (typtype as u8, category as u8) {
        (b'e', _) => ValueKind::Enum,
        (_, b'A') => ValueKind::Array,
        (b'd', _) => Type::from_oid(base).map_or(ValueKind::Other, |t| encoder_for(&t).0),
        _ => match Type::from_oid(oid) {
            Some(t) if !matches!(t.kind(), Kind::Pseudo) => encoder_for(&t).0,
            _ => ValueKind::Other,
        },
    }
}

fn rule(action: i8) -> String {
    match action as u8 {
        b'r' => "RESTRICT",
        b'c' => "CASCADE",
        b'n' => "SET NULL",
        b'd' => "SET DEFAULT",
        _ => "NO ACTION",
    }
    .to_string()
}

pub async fn describe_table(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<TableDescription, DbError> {
    let found = client
        .query_opt(
            "SELECT c.oid, c.relkind FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'v', 'm', 'f', 'p')",
            &[&schema, &table],
        )
        .await
        .map_err(query_error)?;
    let Some(found) = found else {
        return Err(DbError::invalid_input(format!(
            "no table or view {table:?} in schema {schema:?}"
        )));
    };
    let oid: u32 = found.get(0);
    let relkind: i8 = found.get(1);

    let columns = client
        .query(
            "SELECT a.attname::text, a.attnum::int4, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod), \
                    a.atttypid, t.typtype, t.typcategory, t.typbasetype, \
                    NOT a.attnotnull, pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), \
                    a.attidentity, a.attgenerated, d.description \
             FROM pg_catalog.pg_attribute a \
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum \
             LEFT JOIN pg_catalog.pg_description d ON d.objoid = a.attrelid \
               AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(query_error)?;
    let columns: Vec<ColumnDescription> = columns
        .iter()
        .map(|r| {
            let default: Option<String> = r.get(8);
            let identity: i8 = r.get(9);
            let generated: i8 = r.get(10);
            let is_generated = generated != 0;
            ColumnDescription {
                name: r.get(0),
                ordinal: r.get::<_, i32>(1) as u32,
                db_type: r.get(2),
                kind: catalog_kind(r.get(3), r.get(4), r.get(5), r.get(6)),
                nullable: r.get(7),
                auto_increment: matches!(identity as u8, b'a' | b'd')
                    || (!is_generated
                        && default
                            .as_deref()
                            .is_some_and(|d| d.starts_with("nextval("))),
                // A generated column's expression is not a default.
                default: if is_generated { None } else { default },
                comment: r.get(11),
                generated: match generated as u8 {
                    b's' => Some("stored".to_string()),
                    b'v' => Some("virtual".to_string()),
                    _ => None,
                },
                hidden: false,
            }
        })
        .collect();

    let index_rows = client
        .query(
            "SELECT i.relname::text, ix.indisunique, ix.indisprimary, am.amname::text, \
                    pg_catalog.pg_get_expr(ix.indpred, ix.indrelid, true), \
                    ARRAY(SELECT CASE WHEN ix.indkey[k - 1] = 0 \
                                      THEN pg_catalog.pg_get_indexdef(ix.indexrelid, k, true) \
                                      ELSE (SELECT a.attname::text FROM pg_catalog.pg_attribute a \
                                            WHERE a.attrelid = ix.indrelid AND a.attnum = ix.indkey[k - 1]) END \
                          FROM generate_series(1, ix.indnkeyatts) AS k ORDER BY k) \
             FROM pg_catalog.pg_index ix \
             JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid \
             JOIN pg_catalog.pg_am am ON am.oid = i.relam \
             WHERE ix.indrelid = $1 \
             ORDER BY ix.indisprimary DESC, i.relname",
            &[&oid],
        )
        .await
        .map_err(query_error)?;
    let indexes: Vec<IndexInfo> = index_rows
        .iter()
        .map(|r| IndexInfo {
            name: r.get(0),
            unique: r.get(1),
            primary: r.get(2),
            method: r.get(3),
            predicate: r.get(4),
            columns: r.get(5),
        })
        .collect();
    let primary_key = indexes.iter().find(|i| i.primary).map(|i| PrimaryKey {
        name: Some(i.name.clone()),
        columns: i.columns.clone(),
    });

    let key_rows = client
        .query(
            "SELECT con.conname::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n \
                          ORDER BY k.o), \
                    rn.nspname::text, rc.relname::text, \
                    ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o) \
                          JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n \
                          ORDER BY k.o), \
                    con.confupdtype, con.confdeltype \
             FROM pg_catalog.pg_constraint con \
             JOIN pg_catalog.pg_class rc ON rc.oid = con.confrelid \
             JOIN pg_catalog.pg_namespace rn ON rn.oid = rc.relnamespace \
             WHERE con.conrelid = $1 AND con.contype = 'f' \
             ORDER BY con.conname",
            &[&oid],
        )
        .await
        .map_err(query_error)?;
    let foreign_keys = key_rows
        .iter()
        .map(|r| ForeignKey {
            name: Some(r.get(0)),
            columns: r.get(1),
            referenced_schema: r.get(2),
            referenced_table: r.get(3),
            referenced_columns: r.get(4),
            on_update: rule(r.get(5)),
            on_delete: rule(r.get(6)),
        })
        .collect();

    Ok(TableDescription {
        schema: schema.to_string(),
        name: table.to_string(),
        table_type: table_type(relkind),
        columns,
        primary_key,
        foreign_keys,
        indexes,
    })
}
