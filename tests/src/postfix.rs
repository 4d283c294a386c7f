//! Debian's Postfix as a recipient's mail server, run from a private configuration
//! directory: it accepts mail for its domains on one loopback port, delivers known
//! mailboxes to Maildirs with virtual(8), and bounces unknown ones with a real DSN,
//! which it sends to the relay domain through `relay_to` (maskrelay's listener).
//!
//! Needs root (Postfix's master starts as root) and `/etc/postfix/main.cf` listing
//! the private directory in `alternate_config_directories`, which [`Postfix::start`]
//! adds once. Mail Postfix sends has STARTTLS on offer with Debian's snake-oil
//! certificate when it exists.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::process::Command;

/// Serialises edits of `/etc/postfix/main.cf` between tests of one binary.
static MAIN_CF: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running Postfix; stopped when dropped.
pub struct Postfix {
    base: PathBuf,
    conf: PathBuf,
}

/// What a Postfix instance serves.
#[derive(Debug, Clone)]
pub struct PostfixSetup<'a> {
    /// Names this instance's directories (`/tmp/maskrelay-postfix/<label>`); one
    /// label per test running at once.
    pub label: &'a str,
    /// Where its SMTP server listens.
    pub listen: SocketAddr,
    /// The domains it receives mail for.
    pub domains: &'a [&'a str],
    /// The mailboxes that exist (others bounce).
    pub mailboxes: &'a [&'a str],
    /// The relay domain, and where its mail (the DSNs) goes.
    pub relay_to: (&'a str, SocketAddr),
}

impl Postfix {
    /// Writes the configuration and starts Postfix.
    ///
    /// # Errors
    /// If Postfix is missing, refuses the configuration, or does not listen.
    pub async fn start(setup: &PostfixSetup<'_>) -> anyhow::Result<Self> {
        let base = Path::new("/tmp/maskrelay-postfix").join(setup.label);
        let conf = base.join("etc");
        let pf = Self {
            base: base.clone(),
            conf: conf.clone(),
        };
        // A run killed before it could stop its Postfix leaves one behind.
        if conf.join("main.cf").exists() {
            let _ = postfix(&conf, "stop").await;
        }
        let _ = std::fs::remove_dir_all(&base);
        // Postfix makes its data directory itself, owned by its own user.
        for dir in ["etc", "spool", "mail"] {
            std::fs::create_dir_all(base.join(dir))?;
        }
        // virtual(8) writes the Maildirs as nobody.
        chmod(&base, 0o755)?;
        chmod(&base.join("mail"), 0o1777)?;
        allow_config_directory(&conf).await?;
        std::fs::write(conf.join("main.cf"), main_cf(setup, &base))?;
        std::fs::write(conf.join("master.cf"), master_cf(setup.listen))?;
        let mailboxes: String = setup
            .mailboxes
            .iter()
            .map(|m| format!("{m} {}/\n", m.replace('@', "/")))
            .collect();
        std::fs::write(conf.join("mailboxes"), mailboxes)?;
        let (relay, to) = setup.relay_to;
        std::fs::write(
            conf.join("transport"),
            format!("{relay} smtp:[{}]:{}\n", to.ip(), to.port()),
        )?;
        postfix(&conf, "check").await?;
        // Postfix says why it did not start in its log, not on stderr.
        postfix(&conf, "start")
            .await
            .map_err(|e| anyhow::anyhow!("{e:#}\nPostfix log:\n{}", pf.log()))?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(setup.listen).await.is_ok() {
                return Ok(pf);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("Postfix does not listen on {}: {}", setup.listen, pf.log())
    }

    /// The messages delivered to `mailbox` so far, oldest first.
    pub fn mailbox(&self, mailbox: &str) -> Vec<Vec<u8>> {
        let dir = self
            .base
            .join("mail")
            .join(mailbox.replace('@', "/"))
            .join("new");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files.iter().filter_map(|f| std::fs::read(f).ok()).collect()
    }

    /// Waits until `mailbox` holds a message containing `needle`, and returns it.
    ///
    /// # Errors
    /// If none arrives within `patience`; the error carries Postfix's log.
    pub async fn wait_mail(
        &self,
        mailbox: &str,
        needle: &str,
        patience: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + patience;
        while tokio::time::Instant::now() < deadline {
            if let Some(found) = self
                .mailbox(mailbox)
                .into_iter()
                .find(|m| String::from_utf8_lossy(m).contains(needle))
            {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!(
            "no mail with {needle:?} for {mailbox}; Postfix log:\n{}",
            self.log()
        )
    }

    /// Postfix's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = std::process::Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
    }
}

async fn postfix(conf: &Path, command: &str) -> anyhow::Result<()> {
    let out = Command::new("postfix")
        .arg("-c")
        .arg(conf)
        .arg(command)
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run postfix (apt-get install postfix): {e}"))?;
    anyhow::ensure!(
        out.status.success(),
        "postfix {command}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// `postfix -c DIR` only runs a directory the default main.cf lists.
async fn allow_config_directory(conf: &Path) -> anyhow::Result<()> {
    let _one_at_a_time = MAIN_CF.lock().await;
    let main = Path::new("/etc/postfix/main.cf");
    let conf = conf.display().to_string();
    if !main.exists() {
        std::fs::create_dir_all("/etc/postfix")?;
        std::fs::write(
            main,
            format!("compatibility_level = 3.6\nalternate_config_directories = {conf}\n"),
        )?;
        return Ok(());
    }
    let out = Command::new("postconf")
        .args(["-h", "alternate_config_directories"])
        .output()
        .await?;
    let current = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if current.split([',', ' ']).any(|d| d == conf) {
        return Ok(());
    }
    let value = if current.is_empty() {
        conf
    } else {
        format!("{current}, {conf}")
    };
    let out = Command::new("postconf")
        .arg("-e")
        .arg(format!("alternate_config_directories = {value}"))
        .output()
        .await?;
    anyhow::ensure!(out.status.success(), "postconf -e failed");
    Ok(())
}

fn main_cf(setup: &PostfixSetup<'_>, base: &Path) -> String {
    let base = base.display();
    let conf = format!("{base}/etc");
    let tls = if Path::new("/etc/ssl/private/ssl-cert-snakeoil.key").exists() {
        "smtpd_tls_security_level = may\n\
         smtpd_tls_cert_file = /etc/ssl/certs/ssl-cert-snakeoil.pem\n\
         smtpd_tls_key_file = /etc/ssl/private/ssl-cert-snakeoil.key\n"
    } else {
        "smtpd_tls_security_level = none\n"
    };
    format!(
        "compatibility_level = 3.6
queue_directory = {base}/spool
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.test
mydomain = postfix.test
myorigin = $mydomain
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
biff = no
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = {domains}
virtual_mailbox_base = {base}/mail
virtual_mailbox_maps = texthash:{conf}/mailboxes
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
# Accept unknown mailboxes and bounce them afterwards: a real DSN, not a 550.
smtpd_reject_unlisted_recipient = no
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions =
transport_maps = texthash:{conf}/transport
smtp_host_lookup = native
smtp_tls_security_level = none
{tls}maillog_file = {base}/maillog
maillog_file_prefixes = {base}
delay_warning_time = 0
",
        domains = setup.domains.join(" "),
    )
}

fn master_cf(listen: SocketAddr) -> String {
    format!(
        "{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
postlog   unix-dgram n  -       n       -       1       postlogd
"
    )
}
