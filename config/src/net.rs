//! Deserializers for the network keys `nfs.listen` and `nfs.allowed_networks`.
//! Their error messages name the key and show the expected form, because the
//! standard parsers' messages ("invalid socket address syntax") name neither.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::de::{self, SeqAccess, Visitor};
use serde::Deserializer;

const LISTEN_EXPECTED: &str =
    "expected ADDRESS:PORT such as 127.0.0.1:2049 or [::1]:2049, port 1-65535";

const NETWORK_EXPECTED: &str =
    "expected a CIDR network such as 192.168.1.0/24 or fd00::/8, or a single address such as 10.0.0.5";

/// `nfs.listen`: a string `ADDRESS:PORT`. Port 0 parses; `validate` rejects it.
pub(crate) fn deserialize_listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    struct ListenVisitor;

    impl Visitor<'_> for ListenVisitor {
        type Value = SocketAddr;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "nfs.listen as a string: {LISTEN_EXPECTED}")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<SocketAddr, E> {
            v.trim()
                .parse()
                .map_err(|_| E::custom(format!("nfs.listen = {v:?}: {LISTEN_EXPECTED}")))
        }
    }

    d.deserialize_str(ListenVisitor)
}

/// `nfs.allowed_networks`: a list of CIDR strings; a bare address means just
/// that host (/32 or /128).
pub(crate) fn deserialize_networks<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<IpNet>, D::Error> {
    struct NetworksVisitor;

    impl<'de> Visitor<'de> for NetworksVisitor {
        type Value = Vec<IpNet>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "nfs.allowed_networks as a list of strings, each {NETWORK_EXPECTED}"
            )
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<IpNet>, A::Error> {
            let mut networks = Vec::with_capacity(seq.size_hint().unwrap_or(0));
            while let Some(text) = seq.next_element::<String>()? {
                networks.push(parse_network(&text).ok_or_else(|| {
                    de::Error::custom(format!(
                        "nfs.allowed_networks entry {text:?}: {NETWORK_EXPECTED}"
                    ))
                })?);
            }
            Ok(networks)
        }
    }

    d.deserialize_seq(NetworksVisitor)
}

fn parse_network(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_accept_cidr_and_bare_addresses() {
        let net = |s| parse_network(s).map(|n| n.to_string());
        assert_eq!(net("10.0.0.0/8").as_deref(), Some("10.0.0.0/8"));
        assert_eq!(net("10.0.0.5").as_deref(), Some("10.0.0.5/32"));
        assert_eq!(net("::1").as_deref(), Some("::1/128"));
        assert_eq!(net("10.0.0.0/33"), None);
        assert_eq!(net("example.com"), None);
    }
}
