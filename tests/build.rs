//! Turns parts of the suite on that need something outside Rust:
//! - `pg_tests`: the PostgreSQL half, when `MASKRELAY_TEST_POSTGRES_URL` is set;
//! - `swaks_tests` / `python_tests`: tests driving the listener with `swaks` and
//!   Python's `smtplib`, when those programs are installed (`.ci/run` installs swaks);
//! - `postfix_tests`: Postfix as the recipients' mail server, when it is installed
//!   (`.ci/run` installs it).
//!
//! Without them those tests are compiled as ignored, with a reason, so that
//! `cargo test` says plainly what did not run.

use std::path::Path;

fn main() {
    println!("cargo::rerun-if-env-changed=MASKRELAY_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    println!("cargo::rustc-check-cfg=cfg(swaks_tests)");
    println!("cargo::rustc-check-cfg=cfg(python_tests)");
    println!("cargo::rustc-check-cfg=cfg(postfix_tests)");
    if std::env::var_os("MASKRELAY_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=pg_tests");
    }
    for (program, cfg) in [
        ("swaks", "swaks_tests"),
        ("python3", "python_tests"),
        ("postfix", "postfix_tests"),
    ] {
        if let Some(path) = find(program) {
            // Reinstalling or removing the program reruns this script.
            println!("cargo::rerun-if-changed={}", path.display());
            println!("cargo::rustc-cfg={cfg}");
        } else {
            println!("cargo::rerun-if-changed=/usr/bin/{program}");
            println!("cargo::rerun-if-changed=/usr/sbin/{program}");
        }
    }
}

fn find(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| Path::new(candidate).is_file())
}
