//! The deployment token: a random secret that every gRPC call between
//! weft's processes carries, so that nothing else on the machine can drive
//! a worker, call a component or read the key-value store.
//!
//! The manager makes one per deployment, writes it to `.weft/token` (mode
//! 0600, for `weft rollout`, `rollback` and `status`), and hands it to each
//! worker on its standard input, never in its arguments or environment,
//! which other users can read. Clients attach it with [`Attach`]; servers
//! refuse a call without it with [`Check`] (`Unauthenticated`).

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// The metadata key the token travels in.
const HEADER: &str = "authorization";

/// A deployment's secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A new random token: 32 bytes from the kernel, as hex.
    pub fn generate() -> std::io::Result<Token> {
        let mut bytes = [0u8; 32];
        std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
        Ok(Token(
            bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into(),
        ))
    }

    /// A token written as text (64 hex digits).
    pub fn parse(text: &str) -> Option<Token> {
        let text = text.trim();
        (text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| Token(text.into()))
    }

    /// Writes the token to `path`, readable by its owner only.
    pub fn write_file(&self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let partial = path.with_extension("partial");
        let _ = std::fs::remove_file(&partial);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&partial)?;
        writeln!(file, "{}", self.0)?;
        std::fs::rename(partial, path)
    }

    /// Reads the token at `path`.
    pub fn read_file(path: &Path) -> anyhow::Result<Token> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the deployment token {}: {e}; is the app deployed (weft deploy), \
                 and are you its owner?",
                path.display()
            )
        })?;
        Token::parse(&text)
            .ok_or_else(|| anyhow::anyhow!("{} does not hold a deployment token", path.display()))
    }

    /// The token as text, for a worker's standard input.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn header(&self) -> MetadataValue<tonic::metadata::Ascii> {
        format!("Bearer {}", self.0)
            .parse()
            .expect("hex digits are valid metadata")
    }
}

/// Attaches the token to every call of a client.
#[derive(Clone, Debug)]
pub struct Attach(pub Token);

impl Interceptor for Attach {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert(HEADER, self.0.header());
        Ok(request)
    }
}

/// Refuses every call that does not carry the token.
#[derive(Clone, Debug)]
pub struct Check(pub Token);

impl Interceptor for Check {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let expected = self.0.header();
        let given = request.metadata().get(HEADER);
        // Compared in full whatever the first difference, so that the time
        // taken says nothing about the token.
        let matches = given.is_some_and(|given| {
            let (a, b) = (given.as_bytes(), expected.as_bytes());
            a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if matches {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "this call does not carry the deployment's token; weft's processes accept calls \
                 only from the deployment that started them",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_needs_the_token() {
        let token = Token::generate().unwrap();
        let other = Token::generate().unwrap();
        assert_ne!(token, other);
        let mut check = Check(token.clone());
        let mut attach = Attach(token.clone());
        assert!(check.call(attach.call(Request::new(())).unwrap()).is_ok());
        let refused = check.call(Request::new(())).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        let wrong = Attach(other).call(Request::new(())).unwrap();
        assert_eq!(
            check.call(wrong).unwrap_err().code(),
            tonic::Code::Unauthenticated
        );
    }

    #[test]
    fn the_token_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".weft/token");
        let token = Token::generate().unwrap();
        token.write_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Token::read_file(&path).unwrap(), token);
        assert!(format!("{token:?}").contains(".."), "never printed");
    }
}
