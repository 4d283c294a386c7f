//! The SQLite and PostgreSQL migrations must build the same store: the same tables,
//! the same columns, and the same explicit indexes (by name, with the same columns),
//! so that one set of queries runs on both. Needs PostgreSQL.

use std::collections::BTreeSet;

use maskrelay_schema::{Crypto, SecretKey, Store};
use maskrelay_tests::Backend;
use maskrelay_tests::db::TestDb;
use sqlx::{Connection, Row};

/// Every table, `table.column` and `table: index (columns)` of a migrated store.
#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    tables: BTreeSet<String>,
    columns: BTreeSet<String>,
    indexes: BTreeSet<String>,
}

async fn migrated(backend: Backend) -> anyhow::Result<TestDb> {
    let db = TestDb::new(backend).await?;
    let store = Store::connect(&db.url, Crypto::new(&SecretKey::generate()?)).await?;
    store.migrate().await?;
    Ok(db)
}

async fn sqlite_shape(url: &str) -> anyhow::Result<Shape> {
    let mut conn = sqlx::SqliteConnection::connect(url).await?;
    let mut shape = Shape::default();
    let tables = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await?;
    for row in tables {
        let table: String = row.try_get("name")?;
        for column in sqlx::query("SELECT name FROM pragma_table_info($1)")
            .bind(&table)
            .fetch_all(&mut conn)
            .await?
        {
            let name: String = column.try_get("name")?;
            shape.columns.insert(format!("{table}.{name}"));
        }
        // Explicit indexes only: SQLite's automatic ones back UNIQUE and PRIMARY KEY.
        let indexes = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 \
             AND sql IS NOT NULL",
        )
        .bind(&table)
        .fetch_all(&mut conn)
        .await?;
        for index in indexes {
            let name: String = index.try_get("name")?;
            let columns: Vec<String> =
                sqlx::query("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                    .bind(&name)
                    .fetch_all(&mut conn)
                    .await?
                    .iter()
                    .map(|c| c.try_get::<String, _>("name"))
                    .collect::<Result<_, _>>()?;
            shape
                .indexes
                .insert(format!("{table}: {name} ({})", columns.join(", ")));
        }
        shape.tables.insert(table);
    }
    Ok(shape)
}

async fn postgres_shape(url: &str) -> anyhow::Result<Shape> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let mut shape = Shape::default();
    for row in sqlx::query(
        "SELECT table_name::TEXT AS t, column_name::TEXT AS c FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
    )
    .fetch_all(&mut conn)
    .await?
    {
        let (table, column): (String, String) = (row.try_get("t")?, row.try_get("c")?);
        shape.columns.insert(format!("{table}.{column}"));
        shape.tables.insert(table);
    }
    // Explicit indexes only: those behind a constraint (PRIMARY KEY, UNIQUE) are
    // the constraint's, as SQLite's automatic ones are.
    for row in sqlx::query(
        "SELECT t.relname::TEXT AS t, i.relname::TEXT AS i, \
                array_to_string(ARRAY(SELECT a.attname::TEXT FROM unnest(x.indkey) WITH ORDINALITY k(n, o) \
                  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.n ORDER BY k.o), ', ') AS cols \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace s ON s.oid = t.relnamespace \
         WHERE s.nspname = current_schema() AND t.relname NOT LIKE '_sqlx%' \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)",
    )
    .fetch_all(&mut conn)
    .await?
    {
        let (table, index, columns): (String, String, String) =
            (row.try_get("t")?, row.try_get("i")?, row.try_get("cols")?);
        shape.indexes.insert(format!("{table}: {index} ({columns})"));
    }
    Ok(shape)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL"
)]
async fn sqlite_and_postgres_migrations_build_the_same_store() -> anyhow::Result<()> {
    let sqlite = sqlite_shape(&migrated(Backend::Sqlite).await?.url).await?;
    let postgres = postgres_shape(&migrated(Backend::Postgres).await?.url).await?;
    // The comparison must see the store at all.
    assert!(sqlite.tables.len() >= 10, "{sqlite:?}");
    assert!(
        !sqlite.indexes.is_empty() && !postgres.indexes.is_empty(),
        "{sqlite:?}"
    );
    let differ =
        |what: &str, a: &BTreeSet<String>, b: &BTreeSet<String>| {
            let only_sqlite: Vec<_> = a.difference(b).collect();
            let only_postgres: Vec<_> = b.difference(a).collect();
            (only_sqlite.is_empty() && only_postgres.is_empty()).then_some(()).ok_or_else(|| {
            format!("{what}: only in SQLite {only_sqlite:?}; only in PostgreSQL {only_postgres:?}")
        })
        };
    let faults: Vec<String> = [
        differ("tables", &sqlite.tables, &postgres.tables),
        differ("columns", &sqlite.columns, &postgres.columns),
        differ("indexes", &sqlite.indexes, &postgres.indexes),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    assert!(faults.is_empty(), "{}", faults.join("\n"));
    Ok(())
}
