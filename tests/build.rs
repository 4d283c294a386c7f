//! Turns the PostgreSQL half of the suite on when `MASKRELAY_TEST_POSTGRES_URL` is
//! set. Without it those tests are compiled as ignored, with a reason, so that
//! `cargo test` says plainly that they did not run.

fn main() {
    println!("cargo::rerun-if-env-changed=MASKRELAY_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(pg_tests)");
    if std::env::var_os("MASKRELAY_TEST_POSTGRES_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo::rustc-cfg=pg_tests");
    }
}
