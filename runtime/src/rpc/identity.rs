//! Who a weft process is, and how it proves it.
//!
//! Every deployment has its own certificate authority ([`Authority`]). It
//! issues each process a key and a certificate ([`Credentials`]) naming
//! one [`Identity`]:
//!
//! | identity | URI SAN | DNS SAN |
//! |---|---|---|
//! | a worker of group G, version V | `weft://APP/V/G` | `V.worker.weft` |
//! | the manager | `weft://APP/manager` | `manager.weft` |
//! | people's commands (`weft status`, `rollout`) | `weft://APP/cli` | — |
//!
//! The URI names the caller to a server, which authorizes each call from
//! it ([`crate::rpc::connect`]); the DNS name is what a client expects of
//! the server it dials, so a worker of one version never completes a
//! handshake with a worker of another. Group names are percent-encoded in
//! the URI.
//!
//! Credentials travel to a worker on its standard input as one line of
//! JSON ([`Credentials::to_line`]), or are read from a folder of PEM files
//! (`ca.crt`, `tls.crt`, `tls.key`, as a Kubernetes TLS Secret mounts
//! them). Keys never appear in arguments, the environment or logs: their
//! `Debug` prints nothing of them.

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use std::time::Duration;

/// How long a deployment's CA is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// How long a process's certificate is valid. The manager issues a new one
/// at each start of a worker; on Kubernetes, `weft kube --secret` does.
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates are valid from a little before they are made, for clocks
/// that differ between machines.
const CLOCK_SKEW: Duration = Duration::from_secs(3600);

/// The DNS name every manager certificate carries, which clients expect.
pub const MANAGER_NAME: &str = "manager.weft";

/// What a process is, as its certificate says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// The app's name.
    pub app: String,
    /// Its role in the deployment.
    pub role: Role,
}

/// The role of a process in its deployment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Role {
    /// A worker hosting group `group` of version `version`.
    Worker {
        /// The version it runs.
        version: String,
        /// The group it hosts.
        group: String,
    },
    /// The manager (`weft deploy`).
    Manager,
    /// People's commands: `weft status`, `weft rollout`, `weft rollback`.
    Cli,
    /// weft's ingress in a cluster (`weft ingress`), which reads what the
    /// workers served to judge a rollout.
    Ingress,
}

impl Identity {
    /// A worker of `group` in `version` of `app`.
    pub fn worker(app: &str, version: &str, group: &str) -> Identity {
        Identity {
            app: app.to_string(),
            role: Role::Worker {
                version: version.to_string(),
                group: group.to_string(),
            },
        }
    }

    /// The manager of `app`.
    pub fn manager(app: &str) -> Identity {
        Identity {
            app: app.to_string(),
            role: Role::Manager,
        }
    }

    /// People's commands for `app`.
    pub fn cli(app: &str) -> Identity {
        Identity {
            app: app.to_string(),
            role: Role::Cli,
        }
    }

    /// weft's ingress of `app` in a cluster.
    pub fn ingress(app: &str) -> Identity {
        Identity {
            app: app.to_string(),
            role: Role::Ingress,
        }
    }

    /// The URI its certificate names it by.
    pub fn uri(&self) -> String {
        match &self.role {
            Role::Worker { version, group } => {
                format!("weft://{}/{version}/{}", self.app, escape(group))
            }
            Role::Manager => format!("weft://{}/manager", self.app),
            Role::Cli => format!("weft://{}/cli", self.app),
            Role::Ingress => format!("weft://{}/ingress", self.app),
        }
    }

    /// The identity a URI names, if it is one of weft's.
    pub fn from_uri(uri: &str) -> Option<Identity> {
        let rest = uri.strip_prefix("weft://")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let role = match parts[1..] {
            ["manager"] => Role::Manager,
            ["cli"] => Role::Cli,
            ["ingress"] => Role::Ingress,
            [version, group] if !version.is_empty() && !group.is_empty() => Role::Worker {
                version: version.to_string(),
                group: unescape(group)?,
            },
            _ => return None,
        };
        (!parts[0].is_empty()).then(|| Identity {
            app: parts[0].to_string(),
            role,
        })
    }

    /// The DNS name a server of this identity proves, and its clients
    /// expect; people's commands serve nothing.
    pub fn server_name(&self) -> Option<String> {
        match &self.role {
            Role::Worker { version, .. } => Some(worker_name(version)),
            Role::Manager => Some(MANAGER_NAME.to_string()),
            Role::Cli | Role::Ingress => None,
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.role {
            Role::Worker { version, group } => write!(
                f,
                "group '{}' of version {} of app '{}'",
                crate::telemetry::logs::escaped(group),
                crate::telemetry::logs::escaped(version),
                crate::telemetry::logs::escaped(&self.app)
            ),
            Role::Manager => write!(
                f,
                "the manager of app '{}'",
                crate::telemetry::logs::escaped(&self.app)
            ),
            Role::Cli => write!(
                f,
                "a weft command of app '{}'",
                crate::telemetry::logs::escaped(&self.app)
            ),
            Role::Ingress => write!(
                f,
                "the ingress of app '{}'",
                crate::telemetry::logs::escaped(&self.app)
            ),
        }
    }
}

/// The DNS name that workers of `version` prove.
pub fn worker_name(version: &str) -> String {
    format!("{version}.worker.weft")
}

/// A group name in a URI path: anything but lowercase letters, digits,
/// `-`, `_` and `.` as `%XX`.
fn escape(text: &str) -> String {
    let mut escaped = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"-_.".contains(&byte) {
            escaped.push(byte as char);
        } else {
            escaped.push_str(&format!("%{byte:02X}"));
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let mut bytes = Vec::new();
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

/// A deployment's certificate authority: it issues every process's
/// credentials, and its certificate is what they all trust.
pub struct Authority {
    app: String,
    issuer: Issuer<'static, KeyPair>,
    /// The CA's certificate, PEM.
    cert_pem: String,
    /// The certificates a process trusts, PEM: this CA's, and during a
    /// rotation the one it replaces.
    trusted_pem: String,
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Authority({}, ..)", self.app)
    }
}

/// The files of a stored authority, in its folder.
const CA_CERT_FILE: &str = "ca.crt";
const CA_KEY_FILE: &str = "ca.key";
/// The certificates trusted besides the CA's own (during a rotation).
const TRUSTED_FILE: &str = "trusted.crt";

impl Authority {
    /// A new CA for `app`, with a fresh key.
    pub fn generate(app: &str) -> anyhow::Result<Authority> {
        let key = KeyPair::generate().context("cannot make the CA's key")?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("weft CA of app {app}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + CA_VALIDITY;
        let cert = params
            .self_signed(&key)
            .context("cannot sign the CA's certificate")?;
        let cert_pem = cert.pem();
        Ok(Authority {
            app: app.to_string(),
            issuer: Issuer::new(params, key),
            trusted_pem: cert_pem.clone(),
            cert_pem,
        })
    }

    /// The CA kept in `dir` for `app`, made there first when there is none.
    pub fn load_or_create(dir: &Path, app: &str) -> anyhow::Result<Authority> {
        if dir.join(CA_KEY_FILE).exists() {
            return Authority::load(dir, app);
        }
        let authority = Authority::generate(app)?;
        authority.save(dir)?;
        Ok(authority)
    }

    /// The CA kept in `dir`.
    pub fn load(dir: &Path, app: &str) -> anyhow::Result<Authority> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the app's CA file {}", path.display()))
        };
        let cert_pem = read(CA_CERT_FILE)?;
        let key = KeyPair::from_pem(&read(CA_KEY_FILE)?).with_context(|| {
            format!(
                "{}: not a PEM private key; delete the folder {} to make a new CA (then \
                 every running process needs new credentials)",
                dir.join(CA_KEY_FILE).display(),
                dir.display()
            )
        })?;
        let issuer = Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a CA certificate ({e}); delete the folder {} to make a new CA",
                dir.join(CA_CERT_FILE).display(),
                dir.display()
            )
        })?;
        let mut trusted_pem = cert_pem.clone();
        if let Ok(extra) = std::fs::read_to_string(dir.join(TRUSTED_FILE)) {
            trusted_pem.push_str(&extra);
        }
        Ok(Authority {
            app: app.to_string(),
            issuer,
            cert_pem,
            trusted_pem,
        })
    }

    /// Keeps the CA in `dir`: the folder and the key readable by their
    /// owner only.
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        private_dir(dir)?;
        write_private(&dir.join(CA_CERT_FILE), &self.cert_pem)?;
        write_private(&dir.join(CA_KEY_FILE), &self.issuer.key().serialize_pem())
    }

    /// Makes a new CA in `dir`, which from now on issues every
    /// certificate; the one it replaces stays trusted beside it until the
    /// rotation is finished ([`Authority::finish_rotation`]).
    pub fn rotate(dir: &Path, app: &str) -> anyhow::Result<Authority> {
        let old = Authority::load(dir, app)?;
        let mut new = Authority::generate(app)?;
        new.save(dir)?;
        write_private(&dir.join(TRUSTED_FILE), &old.cert_pem)?;
        new.trusted_pem.push_str(&old.cert_pem);
        Ok(new)
    }

    /// Stops trusting the CA that the last rotation replaced.
    pub fn finish_rotation(dir: &Path, app: &str) -> anyhow::Result<Authority> {
        let path = dir.join(TRUSTED_FILE);
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove {}", path.display()))?;
        }
        Authority::load(dir, app)
    }

    /// The app this CA is of.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The certificates that processes of this deployment trust, PEM.
    pub fn trusted_pem(&self) -> &str {
        &self.trusted_pem
    }

    /// A fresh key and a certificate for `identity`.
    pub fn issue(&self, identity: &Identity) -> anyhow::Result<Credentials> {
        let names: Vec<String> = identity.server_name().into_iter().collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, identity.uri());
        let uri = identity
            .uri()
            .try_into()
            .map_err(|e| anyhow::anyhow!("{}: not a valid URI: {e}", identity.uri()))?;
        params.subject_alt_names.push(SanType::URI(uri));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - CLOCK_SKEW;
        params.not_after = now + LEAF_VALIDITY;
        let key = KeyPair::generate().context("cannot make a key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("cannot sign a certificate for {identity}"))?;
        Ok(Credentials {
            identity: identity.clone(),
            ca_pem: self.trusted_pem.clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A process's key and certificate, and the CA certificates it trusts.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// What the certificate names.
    #[serde(skip, default = "no_identity")]
    pub identity: Identity,
    /// The trusted CA certificates, PEM.
    pub ca_pem: String,
    /// The process's certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

fn no_identity() -> Identity {
    Identity::cli("")
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ..)", self.identity.uri())
    }
}

/// The files of credentials in a folder, as a Kubernetes TLS Secret with a
/// `ca.crt` mounts them.
pub const CA_FILE: &str = "ca.crt";
/// The certificate's file.
pub const CERT_FILE: &str = "tls.crt";
/// The key's file.
pub const KEY_FILE: &str = "tls.key";

/// The most a credentials line on standard input may hold.
pub const MAX_LINE: usize = 64 << 10;

impl Credentials {
    /// The credentials as one line of JSON, for a worker's standard input.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("strings serialize")
    }

    /// Credentials written by [`Credentials::to_line`].
    pub fn from_line(line: &str) -> anyhow::Result<Credentials> {
        let credentials: Credentials = serde_json::from_str(line.trim())
            .context("not a line of weft credentials (JSON with ca_pem, cert_pem, key_pem)")?;
        credentials.checked()
    }

    /// The credentials in `dir`: `ca.crt`, `tls.crt` and `tls.key`.
    pub fn read_dir(dir: &Path) -> anyhow::Result<Credentials> {
        let read = |file: &str| {
            let path = dir.join(file);
            std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}; the folder must hold {CA_FILE}, {CERT_FILE} and {KEY_FILE} \
                     (mount the group's TLS Secret there: `weft kube APP --secret` makes it)",
                    path.display()
                )
            })
        };
        Credentials::from_pem(read(CA_FILE)?, read(CERT_FILE)?, read(KEY_FILE)?)
            .with_context(|| format!("the credentials in {}", dir.display()))
    }

    /// Credentials from their PEM texts: the trusted CA certificates, the
    /// certificate and the key.
    pub fn from_pem(
        ca_pem: String,
        cert_pem: String,
        key_pem: String,
    ) -> anyhow::Result<Credentials> {
        Credentials {
            identity: no_identity(),
            ca_pem,
            cert_pem,
            key_pem,
        }
        .checked()
    }

    /// Writes the credentials into `dir`, readable by their owner only.
    pub fn write_dir(&self, dir: &Path) -> anyhow::Result<()> {
        private_dir(dir)?;
        write_private(&dir.join(CA_FILE), &self.ca_pem)?;
        write_private(&dir.join(CERT_FILE), &self.cert_pem)?;
        write_private(&dir.join(KEY_FILE), &self.key_pem)
    }

    /// The credentials with their identity read from the certificate.
    fn checked(mut self) -> anyhow::Result<Credentials> {
        let der = rustls::pki_types::CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("the certificate is not PEM: {e}"))?;
        self.identity = identity_of(&der).context("the certificate names no weft identity")?;
        KeyPair::from_pem(&self.key_pem).map_err(|e| anyhow::anyhow!("the key: {e}"))?;
        Ok(self)
    }
}

use rustls::pki_types::pem::PemObject as _;

/// The weft identity a certificate names in its URI SAN.
pub fn identity_of(der: &[u8]) -> Option<Identity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let names = cert.subject_alternative_name().ok()??;
    names
        .value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Identity::from_uri(uri),
            _ => None,
        })
}

/// Creates `dir` (and its parents) readable by its owner only.
fn private_dir(dir: &Path) -> anyhow::Result<()> {
    crate::file_input::private_dir(dir)
        .with_context(|| format!("cannot create {} for its owner only", dir.display()))
}

/// Writes `text` to `path` (mode 0600), whole or not at all.
pub fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let partial = path.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&partial, path))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_round_trip_through_their_uri() {
        for identity in [
            Identity::worker("shop", "3f2a9c01b7d4e512", "back"),
            Identity::worker("shop", "3f2a9c01b7d4e512", "Odd Group/%"),
            Identity::manager("shop"),
            Identity::cli("shop"),
        ] {
            assert_eq!(Identity::from_uri(&identity.uri()), Some(identity.clone()));
        }
        for bad in [
            "http://shop/manager",
            "weft:///manager",
            "weft://shop/",
            "weft://shop/v1/",
            "weft://shop/a/b/c",
            "weft://shop/v1/%zz",
        ] {
            assert_eq!(Identity::from_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn issued_credentials_name_their_identity_and_hide_their_key() {
        let ca = Authority::generate("shop").unwrap();
        let worker = Identity::worker("shop", "3f2a9c01b7d4e512", "back");
        let credentials = ca.issue(&worker).unwrap();
        let line = credentials.to_line();
        assert!(!line.contains('\n'), "one line");
        let read = Credentials::from_line(&line).unwrap();
        assert_eq!(read.identity, worker);
        assert!(!format!("{read:?}").contains("PRIVATE"));
        assert!(!format!("{ca:?}").contains("PRIVATE"));
        assert!(Credentials::from_line("{}").is_err());
    }

    #[test]
    fn a_stored_ca_is_private_and_issues_after_a_reload() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join(".weft/ca");
        let first = Authority::load_or_create(&ca_dir, "shop").unwrap();
        let again = Authority::load_or_create(&ca_dir, "shop").unwrap();
        assert_eq!(first.trusted_pem(), again.trusted_pem());
        for file in [CA_CERT_FILE, CA_KEY_FILE] {
            let mode = std::fs::metadata(ca_dir.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let mode = std::fs::metadata(&ca_dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let issued = again.issue(&Identity::manager("shop")).unwrap();
        assert_eq!(issued.identity, Identity::manager("shop"));

        let rotated = Authority::rotate(&ca_dir, "shop").unwrap();
        assert!(rotated.trusted_pem().contains(first.trusted_pem()));
        assert_ne!(rotated.trusted_pem(), first.trusted_pem());
        let done = Authority::finish_rotation(&ca_dir, "shop").unwrap();
        assert!(!done.trusted_pem().contains(first.trusted_pem()));
    }
}
