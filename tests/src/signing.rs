//! Signed and encrypted mail made by the real tools: `openssl smime` for S/MIME and
//! GnuPG for OpenPGP, each with a key whose certificate or user id names the
//! member's address, as a mail client's would.

use std::path::PathBuf;

use tokio::process::Command;

use crate::db::unique;

/// A member's S/MIME certificate and OpenPGP key, in a folder of their own.
pub struct Signer {
    dir: PathBuf,
    email: String,
}

impl Signer {
    /// Makes a self-signed certificate for `email` (in its subject and alternative
    /// names) and an OpenPGP key (Ed25519, Curve25519 subkey) with user id
    /// `name <email>`.
    ///
    /// # Errors
    /// If `openssl` or `gpg` is missing or fails.
    pub async fn new(name: &str, email: &str) -> anyhow::Result<Self> {
        // GnuPG's agent socket lives in its home, and socket paths are short.
        let dir = PathBuf::from("/tmp").join(unique("sig"));
        std::fs::create_dir_all(dir.join("gnupg"))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join("gnupg"), std::fs::Permissions::from_mode(0o700))?;
        }
        let signer = Self {
            dir,
            email: email.to_owned(),
        };
        signer
            .run(
                "openssl",
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-days",
                    "2",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "cert.pem",
                    "-subj",
                    &format!("/CN={name}/emailAddress={email}"),
                    "-addext",
                    &format!("subjectAltName=email:{email}"),
                ],
                None,
            )
            .await?;
        signer
            .gpg(
                &[
                    "--quick-gen-key",
                    &format!("{name} <{email}>"),
                    // Ed25519 to sign, with a Curve25519 subkey to encrypt.
                    "future-default",
                    "default",
                    "never",
                ],
                None,
            )
            .await?;
        Ok(signer)
    }

    /// `entity` (a MIME entity: headers, blank line, body) signed with a detached
    /// signature: `multipart/signed` with `application/pkcs7-signature`.
    ///
    /// # Errors
    /// If `openssl` fails.
    pub async fn smime_detached(&self, entity: &str) -> anyhow::Result<String> {
        self.smime_sign(&[], entity).await
    }

    /// `entity` signed opaquely: `application/pkcs7-mime; smime-type=signed-data`,
    /// the entity inside the CMS structure.
    ///
    /// # Errors
    /// If `openssl` fails.
    pub async fn smime_opaque(&self, entity: &str) -> anyhow::Result<String> {
        self.smime_sign(&["-nodetach"], entity).await
    }

    /// `entity` signed opaquely by a streaming signer (`-stream`): BER with
    /// indefinite lengths and the content in chunks, as streaming encoders write it.
    ///
    /// # Errors
    /// If `openssl` fails.
    pub async fn smime_opaque_streamed(&self, entity: &str) -> anyhow::Result<String> {
        self.smime_sign(&["-nodetach", "-stream"], entity).await
    }

    /// `entity` encrypted to the certificate: S/MIME enveloped data.
    ///
    /// # Errors
    /// If `openssl` fails.
    pub async fn smime_encrypted(&self, entity: &str) -> anyhow::Result<String> {
        self.smime(&["-encrypt", "-aes256", "cert.pem"], entity)
            .await
    }

    /// The public key, ASCII-armoured, as Thunderbird attaches it.
    ///
    /// # Errors
    /// If `gpg` fails.
    pub async fn pgp_public_key(&self) -> anyhow::Result<String> {
        self.gpg(&["--armor", "--export", &self.email], None).await
    }

    /// An armoured detached signature of `data`, naming the signer (`--sender`).
    ///
    /// # Errors
    /// If `gpg` fails.
    pub async fn pgp_detached(&self, data: &str) -> anyhow::Result<String> {
        self.gpg(
            &[
                "--armor",
                "--detach-sign",
                "--sender",
                &self.email,
                "-u",
                &self.email,
            ],
            Some(data),
        )
        .await
    }

    /// `text` clear-signed inline (`BEGIN PGP SIGNED MESSAGE`).
    ///
    /// # Errors
    /// If `gpg` fails.
    pub async fn pgp_clearsigned(&self, text: &str) -> anyhow::Result<String> {
        self.gpg(
            &["--clearsign", "--sender", &self.email, "-u", &self.email],
            Some(text),
        )
        .await
    }

    /// `text` encrypted to the key, armoured.
    ///
    /// # Errors
    /// If `gpg` fails.
    pub async fn pgp_encrypted(&self, text: &str) -> anyhow::Result<String> {
        self.gpg(
            &[
                "--armor",
                "--encrypt",
                "--trust-model",
                "always",
                "-r",
                &self.email,
            ],
            Some(text),
        )
        .await
    }

    async fn smime_sign(&self, options: &[&str], entity: &str) -> anyhow::Result<String> {
        let mut args = vec!["-sign"];
        args.extend_from_slice(options);
        args.extend_from_slice(&["-signer", "cert.pem", "-inkey", "key.pem"]);
        self.smime(&args, entity).await
    }

    async fn smime(&self, args: &[&str], entity: &str) -> anyhow::Result<String> {
        let mut all = vec!["smime"];
        all.extend_from_slice(args);
        let out = self.run("openssl", &all, Some(entity)).await?;
        Ok(crlf(&out))
    }

    async fn gpg(&self, args: &[&str], input: Option<&str>) -> anyhow::Result<String> {
        let home = self.dir.join("gnupg");
        let home = home.to_string_lossy().into_owned();
        let mut all = vec![
            "--homedir",
            home.as_str(),
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ];
        all.extend_from_slice(args);
        let out = self.run("gpg", &all, input).await?;
        Ok(crlf(&out))
    }

    async fn run(
        &self,
        program: &str,
        args: &[&str],
        input: Option<&str>,
    ) -> anyhow::Result<String> {
        use tokio::io::AsyncWriteExt;
        let mut child = Command::new(program)
            .args(args)
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| anyhow::anyhow!("{program} could not be started (install it): {e}"))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(input.unwrap_or_default().as_bytes())
                .await?;
        }
        let out = child.wait_with_output().await?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        let home = self.dir.join("gnupg");
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(&home)
            .args(["--kill", "all"])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Text with every line ending made CRLF, as mail is sent.
pub fn crlf(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\n', "\r\n")
}
