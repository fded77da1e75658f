//! SQLite metadata from `PRAGMA database_list`, `sqlite_schema`,
//! `table_xinfo`, `foreign_key_list`, `index_list` and `index_xinfo`, in the
//! protocol's normalized shapes. SQLite has no schema catalog beyond these:
//! each attached database is a schema.

use dbbridge_protocol::metadata::{
    ColumnDescription, ForeignKey, IndexInfo, PrimaryKey, SchemaInfo, TableDescription, TableInfo,
    TableType,
};
use dbbridge_protocol::query::ValueKind;
use rusqlite::{Connection, OptionalExtension};

use super::map_error;
use super::types::kind_of_decl;
use crate::DbError;

type Result<T> = std::result::Result<T, DbError>;

fn q(e: rusqlite::Error) -> DbError {
    map_error(e, None)
}

/// Every row of `sql`, mapped by `f`.
fn rows<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql).map_err(q)?;
    let mapped = stmt.query_map(params, f).map_err(q)?;
    mapped.collect::<std::result::Result<_, _>>().map_err(q)
}

/// Quotes an identifier for SQL text.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn list_schemas(conn: &Connection) -> Result<Vec<SchemaInfo>> {
    schema_names(conn).map(|names| {
        names
            .into_iter()
            .map(|name| SchemaInfo {
                is_system: name == "temp",
                name,
            })
            .collect()
    })
}

fn schema_names(conn: &Connection) -> Result<Vec<String>> {
    rows(
        conn,
        "SELECT name FROM pragma_database_list ORDER BY seq",
        [],
        |r| r.get(0),
    )
}

fn check_schema(conn: &Connection, schema: &str) -> Result<()> {
    if schema_names(conn)?.iter().any(|s| s == schema) {
        Ok(())
    } else {
        Err(DbError::invalid_input(format!(
            "no schema named {schema:?}"
        )))
    }
}

pub fn list_tables(conn: &Connection, schema: Option<&str>) -> Result<Vec<TableInfo>> {
    let schemas = match schema {
        Some(s) => {
            check_schema(conn, s)?;
            vec![s.to_string()]
        }
        None => schema_names(conn)?,
    };
    let mut out = Vec::new();
    for schema in schemas {
        let sql = format!(
            "SELECT name, type FROM {}.sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            ident(&schema)
        );
        let found: Vec<(String, String)> = rows(conn, &sql, [], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for (name, kind) in found {
            out.push(TableInfo {
                schema: schema.clone(),
                name,
                table_type: if kind == "view" {
                    TableType::View
                } else {
                    TableType::Table
                },
                row_estimate: None,
                comment: None,
                partitioned: false,
            });
        }
    }
    Ok(out)
}

pub fn describe_table(conn: &Connection, schema: &str, table: &str) -> Result<TableDescription> {
    check_schema(conn, schema)?;
    let s = ident(schema);
    let found: Option<(String, Option<String>)> = conn
        .query_row(
            &format!("SELECT type, sql FROM {s}.sqlite_schema WHERE type IN ('table','view') AND name = ?1"),
            [table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(q)?;
    let Some((kind, create_sql)) = found else {
        return Err(DbError::invalid_input(format!(
            "no table or view named {table:?} in schema {schema:?}"
        )));
    };
    let create_sql = create_sql.unwrap_or_default();
    let upper_sql = create_sql.to_ascii_uppercase();
    let without_rowid = upper_sql.contains("WITHOUT ROWID");

    // cid, name, type, notnull, dflt_value, pk, hidden
    let sql = format!("PRAGMA {s}.table_xinfo({})", ident(table));
    let raw: Vec<(String, String, bool, Option<String>, i64, i64)> = rows(conn, &sql, [], |r| {
        Ok((
            r.get(1)?,
            r.get(2)?,
            r.get::<_, i64>(3)? != 0,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    })?;

    let mut pk: Vec<(i64, String)> = raw
        .iter()
        .filter(|c| c.4 > 0)
        .map(|c| (c.4, c.0.clone()))
        .collect();
    pk.sort();
    // A lone INTEGER PRIMARY KEY on a rowid table is the rowid: assigned automatically.
    let rowid_alias = if pk.len() == 1 && !without_rowid {
        raw.iter()
            .find(|c| c.0 == pk[0].1)
            .filter(|c| c.1.eq_ignore_ascii_case("INTEGER"))
            .map(|c| c.0.clone())
    } else {
        None
    };

    let columns = raw
        .iter()
        .enumerate()
        .map(|(i, (name, decl, notnull, default, _pk, hidden))| {
            let is_rowid = rowid_alias.as_deref() == Some(name.as_str());
            ColumnDescription {
                name: name.clone(),
                ordinal: i as u32 + 1,
                db_type: decl.clone(),
                kind: kind_of_decl(Some(decl)).unwrap_or(ValueKind::Other),
                nullable: !notnull && !is_rowid,
                default: default.clone(),
                // AUTOINCREMENT only changes how ids are reused; any rowid alias is assigned.
                auto_increment: is_rowid,
                comment: None,
                generated: match hidden {
                    2 => Some("virtual".to_string()),
                    3 => Some("stored".to_string()),
                    _ => None,
                },
                hidden: *hidden == 1,
            }
        })
        .collect();

    let primary_key = (!pk.is_empty()).then(|| PrimaryKey {
        name: None,
        columns: pk.into_iter().map(|(_, c)| c).collect(),
    });
    let foreign_keys = if kind == "table" {
        foreign_keys(conn, schema, table)?
    } else {
        Vec::new()
    };
    let indexes = if kind == "table" {
        indexes(conn, schema, table)?
    } else {
        Vec::new()
    };
    Ok(TableDescription {
        schema: schema.to_string(),
        name: table.to_string(),
        table_type: if kind == "view" {
            TableType::View
        } else {
            TableType::Table
        },
        columns,
        primary_key,
        foreign_keys,
        indexes,
    })
}

fn foreign_keys(conn: &Connection, schema: &str, table: &str) -> Result<Vec<ForeignKey>> {
    let s = ident(schema);
    // id, seq, table, from, to, on_update, on_delete, match
    let sql = format!("PRAGMA {s}.foreign_key_list({})", ident(table));
    let keys: Vec<(i64, String, String, Option<String>, String, String)> =
        rows(conn, &sql, [], |r| {
            Ok((
                r.get(0)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
    let mut out: Vec<(i64, ForeignKey)> = Vec::new();
    for (id, ref_table, from, to, on_update, on_delete) in keys {
        if out.last().map(|(last, _)| *last) != Some(id) {
            out.push((
                id,
                ForeignKey {
                    name: None,
                    columns: Vec::new(),
                    referenced_schema: schema.to_string(),
                    referenced_table: ref_table.clone(),
                    referenced_columns: Vec::new(),
                    on_update,
                    on_delete,
                },
            ));
        }
        let fk = &mut out.last_mut().expect("pushed above").1;
        fk.columns.push(from);
        if let Some(to) = to {
            fk.referenced_columns.push(to);
        }
    }
    // `to` is NULL when the key references the parent's primary key implicitly.
    for (_, fk) in &mut out {
        if fk.referenced_columns.is_empty() {
            let parent = describe_primary_key(conn, schema, &fk.referenced_table)?;
            fk.referenced_columns = parent;
        }
    }
    // SQLite lists keys last-declared first; give them in declaration order.
    out.reverse();
    Ok(out.into_iter().map(|(_, fk)| fk).collect())
}

fn describe_primary_key(conn: &Connection, schema: &str, table: &str) -> Result<Vec<String>> {
    let sql = "SELECT name, pk FROM pragma_table_info(?1, ?2) WHERE pk > 0 ORDER BY pk";
    rows(conn, sql, [table, schema], |r| r.get(0))
}

fn indexes(conn: &Connection, schema: &str, table: &str) -> Result<Vec<IndexInfo>> {
    let s = ident(schema);
    // seq, name, unique, origin, partial
    let sql = format!("PRAGMA {s}.index_list({})", ident(table));
    let list: Vec<(String, bool, String, bool)> = rows(conn, &sql, [], |r| {
        Ok((
            r.get(1)?,
            r.get::<_, i64>(2)? != 0,
            r.get(3)?,
            r.get::<_, i64>(4)? != 0,
        ))
    })?;
    let mut out = Vec::new();
    for (name, unique, origin, partial) in list {
        let sql: Option<String> = conn
            .query_row(
                &format!("SELECT sql FROM {s}.sqlite_schema WHERE type = 'index' AND name = ?1"),
                [&name],
                |r| r.get(0),
            )
            .optional()
            .map_err(q)?
            .flatten();
        let parsed = sql.as_deref().map(parse_create_index);
        // seqno, cid, name, desc, coll, key: only key columns are the index's terms.
        let sql = format!("PRAGMA {s}.index_xinfo({})", ident(&name));
        let parts: Vec<(i64, i64, Option<String>, bool)> = rows(conn, &sql, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(5)? != 0))
        })?;
        let columns = parts
            .into_iter()
            .filter(|part| part.3)
            .map(|(seqno, cid, col, _)| match (cid, col) {
                (_, Some(col)) => col,
                // cid -2: an expression; its text comes from the CREATE INDEX statement.
                (-2, None) => parsed
                    .as_ref()
                    .and_then(|p| p.0.get(seqno as usize).cloned())
                    .unwrap_or_else(|| "<expression>".to_string()),
                (_, None) => "rowid".to_string(),
            })
            .collect();
        out.push(IndexInfo {
            name,
            columns,
            unique,
            primary: origin == "pk",
            method: Some("btree".to_string()),
            predicate: if partial {
                parsed.and_then(|p| p.1)
            } else {
                None
            },
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The indexed terms and the WHERE clause of a `CREATE INDEX` statement.
fn parse_create_index(sql: &str) -> (Vec<String>, Option<String>) {
    // The term list is the first top-level parenthesis after ON <table>.
    let upper = sql.to_ascii_uppercase();
    let Some(on) = find_keyword(&upper, "ON", 0) else {
        return (Vec::new(), None);
    };
    let Some(open) = sql[on..].find('(').map(|i| i + on) else {
        return (Vec::new(), None);
    };
    let mut depth = 0;
    let mut terms = Vec::new();
    let mut start = open + 1;
    let mut close = sql.len();
    let mut quote: Option<char> = None;
    for (i, c) in sql[open..].char_indices().map(|(i, c)| (i + open, c)) {
        if let Some(qc) = quote {
            if c == qc {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '[' => quote = Some(']'),
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    terms.push(sql[start..i].trim().to_string());
                    close = i;
                    break;
                }
            }
            ',' if depth == 1 => {
                terms.push(sql[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let predicate = find_keyword(&upper, "WHERE", close)
        .map(|w| sql[w + 5..].trim().trim_end_matches(';').trim().to_string());
    (terms, predicate)
}

/// Byte offset of `word` as a whole word in `upper` at or after `from`.
fn find_keyword(upper: &str, word: &str, from: usize) -> Option<usize> {
    let bytes = upper.as_bytes();
    let mut at = from;
    while let Some(i) = upper.get(at..)?.find(word) {
        let i = i + at;
        let before = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let end = i + word.len();
        let after =
            end >= bytes.len() || !(bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
        if before && after {
            return Some(i);
        }
        at = i + word.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::parse_create_index;

    #[test]
    fn create_index_terms_and_predicate() {
        let (terms, pred) = parse_create_index(
            "CREATE INDEX ix ON t (lower(name), \"a,b\", (x + 1)) WHERE deleted = 0",
        );
        assert_eq!(terms, vec!["lower(name)", "\"a,b\"", "(x + 1)"]);
        assert_eq!(pred.as_deref(), Some("deleted = 0"));
        let (terms, pred) = parse_create_index("create unique index ix on t(a)");
        assert_eq!(terms, vec!["a"]);
        assert_eq!(pred, None);
    }
}
