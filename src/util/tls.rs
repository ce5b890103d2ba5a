//! The process's one TLS crypto provider. kube and reqwest are both built without a provider of
//! their own choosing (reqwest's default would be aws-lc-rs next to kube's ring, and the first
//! client would panic): whoever builds an HTTPS client first installs ring.

/// Installs ring as the process's crypto provider unless one is installed already.
pub fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may win the race; its provider is ring too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}
