//! `priv_validator_key.json`: the validator's ed25519 key.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tpslab_types::keys::SigningKey;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    pub_key: String,
    priv_key: String,
}

/// The key file's text (what [`save`] writes), e.g. for a Kubernetes Secret.
pub fn to_text(key: &SigningKey) -> Result<String> {
    let f = KeyFile {
        pub_key: hex::encode(key.verifying_key().as_bytes()),
        priv_key: hex::encode(key.to_bytes()),
    };
    Ok(serde_json::to_string_pretty(&f)?)
}

/// Writes `key` to `path` (readable by the owner only).
pub fn save(key: &SigningKey, path: &Path) -> Result<()> {
    std::fs::write(path, to_text(key)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// Reads a key file and checks that its public key matches its private key.
pub fn load(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read validator key {}", path.display()))?;
    let f: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("invalid validator key file {}", path.display()))?;
    let secret: [u8; 32] = hex::decode(&f.priv_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("{}: field `priv_key` must be 64 hex chars", path.display()))?;
    let key = SigningKey::from_bytes(&secret);
    if hex::encode(key.verifying_key().as_bytes()) != f.pub_key {
        anyhow::bail!(
            "{}: field `pub_key` does not match `priv_key`",
            path.display()
        );
    }
    Ok(key)
}
