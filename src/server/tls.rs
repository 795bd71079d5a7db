//! TLS from PEM files (rustls). permd listens on loopback by default, where
//! a sidecar needs no TLS; beyond the pod, serve TLS, and mutual TLS to
//! accept only callers holding a certificate from a CA you name.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

/// The PEM files a TLS listener needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA, only clients with a certificate it signed connect.
    pub client_ca: Option<PathBuf>,
}

fn read(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem =
        std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !pem.windows(10).any(|w| w == b"-----BEGIN") {
        anyhow::bail!("{what} {} is not PEM (no -----BEGIN line)", path.display());
    }
    Ok(pem)
}

impl TlsFiles {
    pub fn server_config(&self) -> anyhow::Result<ServerTlsConfig> {
        let cert = read("TLS certificate", &self.cert)?;
        let key = read("TLS key", &self.key)?;
        let mut config = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read("client CA", ca)?));
        }
        Ok(config)
    }
}
