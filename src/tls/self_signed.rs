//! `tls_self_signed`: a certificate generated for this machine's names (for LANs and tests),
//! kept in `tls_self_signed_dir` and reused on the next start while it still fits.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::RootCertStore;

use super::certs::{self, CertFiles};
use super::TlsError;

/// Validity of a generated certificate. Apple's clients refuse server certificates valid for
/// more than 825 days, even ones a user trusted by hand.
const VALIDITY: Duration = Duration::from_secs(825 * 24 * 3600);
/// A kept certificate that expires sooner than this is replaced at start.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// The certificate in use and whether it was made on this start.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    pub files: CertFiles,
    pub names: Vec<String>,
    pub generated: bool,
}

/// What the certificate covers when `tls_hostnames` is empty: the listen address, `localhost`,
/// the loopback addresses and the machine's other addresses (the ones another machine can use).
pub fn default_hostnames(listen: SocketAddr) -> Vec<String> {
    let mut ips = Vec::new();
    if !listen.ip().is_unspecified() {
        ips.push(listen.ip());
    }
    ips.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    ips.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    ips.extend(machine_addresses());
    let mut names = vec!["localhost".to_owned()];
    for ip in ips {
        let name = ip.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// This machine's addresses that another machine could reach it by: not loopback and not
/// link-local (a link-local IPv6 address needs a zone id, which a URL cannot carry usefully).
pub fn machine_addresses() -> Vec<IpAddr> {
    let interfaces = match if_addrs::get_if_addrs() {
        Ok(interfaces) => interfaces,
        Err(err) => {
            tracing::warn!(error = %err, "cannot list the network interfaces");
            return Vec::new();
        }
    };
    let mut ips: Vec<IpAddr> = interfaces
        .iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .map(|i| i.ip())
        .filter(|ip| !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Reuses the certificate kept in `dir` when it covers `names` and has time left, else makes a
/// new one (P-256 key, file mode 0600).
pub fn ensure(
    dir: &Path,
    names: &[String],
    provider: &Arc<CryptoProvider>,
) -> Result<SelfSigned, TlsError> {
    for name in names {
        ServerName::try_from(name.as_str()).map_err(|_| TlsError::Hostname(name.clone()))?;
    }
    let files = CertFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    if files.cert.exists() && files.key.exists() {
        match certs::load(&files, provider) {
            Ok(kept) if covers(&kept, names, provider) => {
                return Ok(SelfSigned {
                    files,
                    names: names.to_vec(),
                    generated: false,
                })
            }
            Ok(_) => tracing::info!(
                dir = %dir.display(),
                "the kept self-signed certificate does not cover {names:?} or expires soon: making a new one"
            ),
            Err(err) => tracing::warn!(
                error = %err,
                "the kept self-signed certificate is unusable: making a new one"
            ),
        }
    }
    generate(dir, &files, names)?;
    Ok(SelfSigned {
        files,
        names: names.to_vec(),
        generated: true,
    })
}

/// Whether a browser would accept `certified` (trusted by hand) for every name, a month from now.
fn covers(
    certified: &rustls::sign::CertifiedKey,
    names: &[String],
    provider: &Arc<CryptoProvider>,
) -> bool {
    let Some(leaf) = certified.cert.first() else {
        return false;
    };
    let mut roots = RootCertStore::empty();
    if roots.add(leaf.clone()).is_err() {
        return false;
    }
    let Ok(verifier) =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()
    else {
        return false;
    };
    let Ok(now) = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let then = UnixTime::since_unix_epoch(now + RENEW_BEFORE);
    names.iter().all(|name| {
        ServerName::try_from(name.as_str()).is_ok_and(|server_name| {
            verifier
                .verify_server_cert(leaf, &[], &server_name, &[], then)
                .is_ok()
        })
    })
}

fn generate(dir: &Path, files: &CertFiles, names: &[String]) -> Result<(), TlsError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "Switchboard self-signed certificate");
    params.distinguished_name = subject;
    let now = time::OffsetDateTime::now_utc();
    // A day of slack for clocks that run behind.
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + VALIDITY;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;

    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_error(dir))?;
    // The key is written before anyone else can read it: created 0600, and set to 0600 in case
    // an older file was more open.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut key_file = options.open(&files.key).map_err(write_error(&files.key))?;
    #[cfg(unix)]
    key_file
        .set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(write_error(&files.key))?;
    key_file
        .write_all(key.serialize_pem().as_bytes())
        .map_err(write_error(&files.key))?;
    std::fs::write(&files.cert, cert.pem()).map_err(write_error(&files.cert))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    #[test]
    fn defaults_cover_the_listen_address_and_localhost() {
        let names = default_hostnames("10.1.2.3:8000".parse().unwrap());
        assert_eq!(names[..2], ["localhost".to_owned(), "10.1.2.3".to_owned()]);
        assert!(names.contains(&"127.0.0.1".to_owned()));
        let names = default_hostnames("0.0.0.0:8000".parse().unwrap());
        assert!(!names.contains(&"0.0.0.0".to_owned()));
        assert!(machine_addresses().iter().all(|ip| !ip.is_loopback()));
    }

    #[test]
    fn a_kept_certificate_is_reused_while_it_covers_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let first = ensure(dir.path(), &names, &provider()).unwrap();
        assert!(first.generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&first.files.key)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
        }
        let pem = std::fs::read(&first.files.cert).unwrap();

        let again = ensure(dir.path(), &names[..1], &provider()).unwrap();
        assert!(!again.generated, "a subset of the names is still covered");
        assert_eq!(std::fs::read(&again.files.cert).unwrap(), pem);

        let more = vec!["localhost".to_owned(), "sb.example".to_owned()];
        let renewed = ensure(dir.path(), &more, &provider()).unwrap();
        assert!(renewed.generated, "a new name needs a new certificate");
        assert_ne!(std::fs::read(&renewed.files.cert).unwrap(), pem);
    }

    #[test]
    fn a_bad_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure(dir.path(), &["not a host".to_owned()], &provider()).unwrap_err();
        assert!(err.to_string().contains("not a host"), "{err}");
    }
}
