//! Harness of maskrelay's end-to-end tests: each test gets its own database, a real
//! smarthost on loopback, and a gateway on free ports.
//!
//! - [`api`]: the HTTP API as a directory calls it; [`broadcast`]: broadcasts sent,
//!   counted and their copies read, as the broadcast tests share them.
//! - [`conversation`]: Alice and Bob in one conversation, for the privacy tests.
//! - [`db`]: a SQLite file or a fresh PostgreSQL database per test.
//! - [`dns`]: a DNS server on loopback publishing SPF, DKIM and DMARC records.
//! - [`smarthost`]: an independent SMTP server recording what maskrelay delivers, as
//!   smarthost or as a recipient's MX host.
//! - [`mx_hosts`]: several of them on loopback addresses, named by MX records.
//! - [`gateway`]: starting maskrelay and talking to it over HTTP and SMTP.
//! - [`process`]: maskrelay as a separate process, to kill and restart.
//! - [`load`]: a stream of numbered replies and a tally of how each was answered.
//! - [`flood`]: clients holding SMTP sessions without using them.
//! - [`mail`]: reading delivered messages.
//! - [`postfix`]: Debian's Postfix as a recipient's mail server.
//! - [`privacy`]: looking for personal addresses in delivered mail, decoded every way.
//! - [`raw`]: a raw SMTP client for protocol tests.
//! - [`signing`]: S/MIME and OpenPGP samples made with `openssl` and `gpg`.
//! - [`verifiers`]: dkimpy and Mail::DKIM, verifying what maskrelay signs.
//! - [`both_backends!`]: runs each test on SQLite and on PostgreSQL.

pub mod api;
pub mod broadcast;
pub mod conversation;
pub mod db;
pub mod dns;
pub mod doomed;
pub mod flood;
pub mod gateway;
pub mod load;
pub mod mail;
pub mod mx_hosts;
pub mod postfix;
pub mod privacy;
pub mod process;
pub mod raw;
pub mod signing;
pub mod smarthost;
pub mod verifiers;

pub use db::Backend;

/// Declares, for each named `async fn(Backend) -> anyhow::Result<()>`, one test on
/// SQLite and one on PostgreSQL. The PostgreSQL ones are ignored, with the reason
/// shown by `cargo test`, unless `MASKRELAY_TEST_POSTGRES_URL` was set at build time.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(not(pg_tests), ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL")]
                async fn $name() -> anyhow::Result<()> {
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}
