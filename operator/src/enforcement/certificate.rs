//! Client certificates for ports with `consumerAuth: certificate`: the
//! operator's client CA signs one certificate per agreement, whose common
//! name is the agreement's role, valid until the agreement ends. PostgreSQL's
//! `cert` authentication then admits the role with no password at all.
//!
//! Why: a password grant costs two PBKDF2 derivations of 4,096 rounds (ours
//! for the SCRAM verifier, and PostgreSQL's check that the verifier is not of
//! the empty password); a certificate costs one key generation and one
//! signature, and no secret ever reaches the database.

use std::path::{Path, PathBuf};

/// What the CA signs and how long the certificate of an agreement without
/// an end lasts: RFC 5280's "no well-defined expiration date" (99991231235959Z).
/// The role is dropped when the agreement ends, which ends the certificate's
/// use whatever its date says.
const NO_END: i64 = 253_402_300_799;

/// Certificates start this long before now, for clocks a little behind.
const BACKDATE: i64 = 300;

/// The client CA could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A file could not be read.
    #[error("client CA {what} {path}: {source}")]
    Read {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a usable PEM certificate or private key.
    #[error("client CA {what} {path}: {message}")]
    Parse {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The CA that signs consumers' client certificates.
pub struct ClientCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCa")
    }
}

/// A consumer's certificate and its private key, both PEM.
pub struct Issued {
    /// The certificate (`tls.crt`).
    pub cert_pem: String,
    /// Its PKCS#8 private key (`tls.key`): never log or store it outside the
    /// consumer's credentials Secret.
    pub key_pem: String,
}

impl ClientCa {
    /// Loads the CA from a PEM certificate and a PEM (PKCS#8) private key.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, CaError> {
        let read = |what, path: &Path| {
            std::fs::read_to_string(path).map_err(|source| CaError::Read {
                what,
                path: path.to_path_buf(),
                source,
            })
        };
        let (cert_pem, key_pem) = (read("certificate", cert)?, read("key", key)?);
        let parse = |what, path: &Path, e: rcgen::Error| CaError::Parse {
            what,
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let key_pair = rcgen::KeyPair::from_pem(&key_pem).map_err(|e| parse("key", key, e))?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&cert_pem, key_pair)
            .map_err(|e| parse("certificate", cert, e))?;
        Ok(Self { issuer })
    }

    /// A new key and a certificate for `role` (its common name), valid from a
    /// few minutes ago until `until` (unix seconds), or with no end.
    pub fn issue(&self, role: &str, until: Option<i64>) -> Result<Issued, rcgen::Error> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, role);
        let now = jiff::Timestamp::now().as_second();
        let at = |secs: i64| {
            time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| rcgen::Error::Time)
        };
        params.not_before = at(now - BACKDATE)?;
        params.not_after = at(until.unwrap_or(NO_END).clamp(now, NO_END))?;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        // unique, positive (RFC 5280 4.1.2.2: at most 20 octets)
        let mut serial: [u8; 16] = rand::random();
        serial[0] &= 0x7f;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(dir: &Path) -> anyhow::Result<ClientCa> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test client CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        let cert = params.self_signed(&key)?;
        std::fs::write(dir.join("ca.crt"), cert.pem())?;
        std::fs::write(dir.join("ca.key"), key.serialize_pem())?;
        Ok(ClientCa::load(&dir.join("ca.crt"), &dir.join("ca.key"))?)
    }

    fn tempdir(name: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    #[test]
    fn a_certificate_names_the_role_and_ends_with_the_agreement() -> anyhow::Result<()> {
        let dir = tempdir("dm-ca-issue")?;
        let ca = ca(&dir)?;
        let end = jiff::Timestamp::now().as_second() + 3600;
        let issued = ca.issue("dm_0123abcd", Some(end))?;
        let der = pem_der(&issued.cert_pem)?;
        let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
        assert_eq!(common_names(cert.subject()), vec!["dm_0123abcd"]);
        assert_eq!(cert.validity().not_after.timestamp(), end);
        assert!(cert.validity().not_before.timestamp() < jiff::Timestamp::now().as_second());
        assert_eq!(common_names(cert.issuer()), vec!["test client CA"]);
        assert!(issued.key_pem.contains("PRIVATE KEY"));
        // each grant a new key
        let again = ca.issue("dm_0123abcd", Some(end))?;
        assert_ne!(again.key_pem, issued.key_pem);
        // no end: RFC 5280's no-expiry date
        let forever = pem_der(&ca.issue("dm_0123abcd", None)?.cert_pem)?;
        let (_, forever) = x509_parser::parse_x509_certificate(&forever)?;
        assert_eq!(forever.validity().not_after.timestamp(), NO_END);
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn a_missing_or_bad_file_is_named() -> anyhow::Result<()> {
        let dir = tempdir("dm-ca-bad")?;
        ca(&dir)?;
        std::fs::write(dir.join("bad.key"), "not a key")?;
        let error = |cert: &str, key: &str| {
            ClientCa::load(&dir.join(cert), &dir.join(key))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let e = error("ca.crt", "bad.key");
        assert!(
            e.starts_with("client CA key ") && e.contains("bad.key"),
            "{e}"
        );
        let e = error("nope.crt", "ca.key");
        assert!(e.contains("certificate") && e.contains("nope.crt"), "{e}");
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    fn common_names<'a>(name: &'a x509_parser::x509::X509Name<'_>) -> Vec<&'a str> {
        name.iter_common_name()
            .filter_map(|c| c.as_str().ok())
            .collect()
    }

    fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
        let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes())?;
        Ok(p.contents)
    }
}
