//! The store's driver stays inside `schema/`: the listener, the outbound side and the
//! binary reach the database only through the store's own types, so that changing
//! how a backend is driven (another SQLite binding, say) touches one crate.

use std::path::Path;

/// The dependency names a crate's manifest lists, in any of its dependency tables.
fn dependencies(manifest: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if in_dependencies && let Some((name, _)) = line.split_once(['=', '.']) {
            names.push(name.trim().to_owned());
        }
    }
    anyhow::ensure!(
        !names.is_empty(),
        "no dependencies found: is this a manifest?"
    );
    Ok(names)
}

#[test]
fn only_the_store_depends_on_the_database_driver() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let store = std::fs::read_to_string(root.join("schema/Cargo.toml"))?;
    assert!(dependencies(&store)?.iter().any(|d| d == "sqlx"));
    for krate in ["inbound", "outbound", "gateway"] {
        let manifest = std::fs::read_to_string(root.join(krate).join("Cargo.toml"))?;
        let deps = dependencies(&manifest)?;
        assert!(
            !deps.iter().any(|d| d == "sqlx" || d.starts_with("sqlx-")),
            "{krate}/Cargo.toml depends on sqlx: reach the database through maskrelay-schema"
        );
    }
    Ok(())
}
