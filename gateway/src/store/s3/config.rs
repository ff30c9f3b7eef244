//! [`S3Settings::from_config`]: a `[[stores]]` table of `kind = "s3"`, its
//! keys read from the credentials file or the environment, and the cluster
//! id a prefix's marker records, derived from the cluster secret.

use cairn_chunkstore::Secret;
use cairn_config::{read_credentials, StoreRef, ACCESS_KEY_ENV, SECRET_KEY_ENV};

use super::S3Settings;

/// The cluster id a bucket prefix's marker holds: derived from the cluster
/// secret, so every gateway of the cluster (a restored one included)
/// recognises its own prefixes, and the secret is not revealed.
pub fn cluster_id(secret: &Secret) -> String {
    let mut id = [0u8; 16];
    secret.derive(b"cairn s3 cluster id v1", &mut id);
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl S3Settings {
    /// The settings of a validated `kind = "s3"` table; the error names
    /// the store and says where the keys were looked for.
    pub fn from_config(store: &StoreRef, secret: &Secret) -> Result<S3Settings, String> {
        let (access_key_id, secret_access_key) = match &store.credentials_file {
            Some(path) => read_credentials(path)
                .map_err(|why| format!("store {}: credentials_file {why}", store.name))?,
            None => match (
                std::env::var(ACCESS_KEY_ENV),
                std::env::var(SECRET_KEY_ENV),
            ) {
                (Ok(id), Ok(key)) if !id.is_empty() && !key.is_empty() => (id, key),
                _ => {
                    return Err(format!(
                        "store {}: no keys for the bucket: set credentials_file in its [[stores]] table, or {ACCESS_KEY_ENV} and {SECRET_KEY_ENV} in the gateway's environment",
                        store.name
                    ))
                }
            },
        };
        Ok(S3Settings {
            name: store.name.clone(),
            endpoint: store.endpoint.clone().unwrap_or_default(),
            bucket: store.bucket.clone().unwrap_or_default(),
            region: store.bucket_region().to_owned(),
            prefix: store.bucket_prefix().to_owned(),
            access_key_id,
            secret_access_key,
            path_style: store.path_style,
            zone: store.bucket_zone(),
            host: store.bucket_host(),
            labels: store.labels.clone(),
            capacity: store.capacity.map_or(0, |c| c.bytes()),
            reserve: 0,
            cluster_id: cluster_id(secret),
            scrub_every: store.bucket_scrub().0,
            scrub_bandwidth: store.bucket_scrub().1,
        })
    }
}
