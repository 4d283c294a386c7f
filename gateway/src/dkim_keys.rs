//! `maskrelay dkim generate|list|retire`: the relay domain's DKIM keys, for the mail
//! admin. Keys are made here and stored (private key encrypted) in the database, so
//! every instance on it signs with them.

use anyhow::{Context, bail};
use maskrelay_deliver::dkim::{Signer, generate, is_selector, zone_line};
use maskrelay_schema::Store;
use maskrelay_schema::dkim::DkimAlgorithm;

use crate::cli::DkimCommand;

/// Runs one `dkim` subcommand against `store`, printing to standard output.
///
/// # Errors
/// A bad selector or algorithm, a taken selector, an unknown one to retire, or a
/// store failure, each said plainly.
pub async fn run(store: &Store, relay_domain: &str, command: DkimCommand) -> anyhow::Result<()> {
    match command {
        DkimCommand::Generate {
            selector,
            algorithm,
        } => {
            if !is_selector(&selector) {
                bail!(
                    "--selector {selector:?} is not a selector: use letters, digits and \
                     hyphens (dots between labels), at most 63 characters"
                );
            }
            let Some(algorithm) = DkimAlgorithm::parse(&algorithm) else {
                bail!("--algorithm {algorithm:?} is not supported: use ed25519 or rsa");
            };
            let key = generate(algorithm)?;
            let added = store
                .add_dkim_key(&selector, algorithm, &key.private_key, &key.public_key)
                .await
                .context("cannot store the key")?;
            if !added {
                bail!(
                    "selector {selector:?} is already in use (perhaps retired); choose a new one"
                );
            }
            println!(
                "; Publish this record, then mail is signed with selector {selector} \
                 from the next key reload:"
            );
            println!(
                "{}",
                zone_line(&selector, relay_domain, algorithm, &key.public_key)
            );
            Ok(())
        }
        DkimCommand::List => {
            let keys = store.dkim_keys(true).await?;
            let signing = Signer::new(relay_domain, &keys)?;
            let signing = signing.selectors();
            println!("selector\talgorithm\tcreated (unix ms)\tstate");
            for key in &keys {
                let state = if key.retired_at.is_some() {
                    "retired"
                } else if signing.contains(&key.selector.as_str()) {
                    "signing"
                } else {
                    "published, not signing"
                };
                println!(
                    "{}\t{}\t{}\t{state}",
                    key.selector,
                    key.algorithm.as_str(),
                    key.created_at
                );
            }
            if keys.is_empty() {
                eprintln!("no DKIM key yet: run `maskrelay dkim generate --selector NAME`");
            }
            Ok(())
        }
        DkimCommand::Retire { selector } => {
            if !store.retire_dkim_key(&selector).await? {
                bail!(
                    "no DKIM key with selector {selector:?} to retire (see `maskrelay dkim list`)"
                );
            }
            println!(
                "retired {selector}: it stops signing at the next key reload; remove its \
                 record from DNS once mail signed with it has been delivered (a few days)"
            );
            Ok(())
        }
    }
}
