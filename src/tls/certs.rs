//! Reading a PEM certificate chain and its private key into a rustls `CertifiedKey`, with
//! errors that name the file at fault.

use std::path::{Path, PathBuf};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::TlsError;

/// The two PEM files a certificate is served from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Loads and checks the pair: the chain parses, the key parses and is the certificate's key.
pub fn load(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    match CertifiedKey::from_der(chain, key, provider) {
        Ok(certified) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(err) => Err(TlsError::UnusableKey {
            path: files.key.clone(),
            detail: err.to_string(),
        }),
    }
}

fn read(path: &Path, kind: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        kind,
        path: path.to_owned(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Parse {
            kind: "certificate",
            path: path.to_owned(),
            detail: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoPem {
            kind: "certificate",
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|err| match err {
        pem::Error::NoItemsFound => TlsError::NoPem {
            kind: "private key",
            path: path.to_owned(),
        },
        other => TlsError::Parse {
            kind: "private key",
            path: path.to_owned(),
            detail: other.to_string(),
        },
    })
}

/// SHA-256 of a certificate's DER, as browsers show it: `AB:CD:…` (32 upper-case pairs).
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_colon_separated_upper_hex() {
        let fp = fingerprint(b"");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert!(fp.starts_with("E3:B0:C4:42:"), "{fp}");
    }
}
