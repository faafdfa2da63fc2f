//! One key, two identities: a node's secp256k1 key is both its Ethereum-style address and its
//! libp2p identity, so a PeerId and an address can be checked against each other.

use libp2p::PeerId;
use libp2p::identity::{Keypair, PublicKey, secp256k1};
use pocmesh_protocol::{Address, SecretKey};

/// Why a key could not become a libp2p identity.
#[derive(Debug, thiserror::Error)]
#[error("the secret key cannot be used as a libp2p secp256k1 identity: {0}")]
pub struct IdentityError(String);

/// The libp2p keypair of a pocmesh key.
pub fn libp2p_keypair(key: &SecretKey) -> Result<Keypair, IdentityError> {
    let mut bytes = key.to_bytes();
    let secret = secp256k1::SecretKey::try_from_bytes(bytes.as_mut_slice())
        .map_err(|e| IdentityError(e.to_string()))?;
    Ok(Keypair::from(secp256k1::Keypair::from(secret)))
}

/// The PeerId of a pocmesh key.
pub fn peer_id(key: &SecretKey) -> Result<PeerId, IdentityError> {
    Ok(libp2p_keypair(key)?.public().to_peer_id())
}

/// The address behind a PeerId, when the PeerId embeds a secp256k1 public key (pocmesh peers
/// always do: their public key is small enough to be inlined in the id).
pub fn peer_address(peer: &PeerId) -> Option<Address> {
    let multihash = peer.as_ref();
    // Code 0 is the identity multihash: the digest is the protobuf-encoded public key itself.
    if multihash.code() != 0 {
        return None;
    }
    let public = PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    let secp = public.try_into_secp256k1().ok()?;
    Some(Address::from_uncompressed_pubkey(
        &secp.to_bytes_uncompressed(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_and_address_name_the_same_key() {
        let key = SecretKey::generate().expect("key");
        let peer = peer_id(&key).expect("peer id");
        assert_eq!(peer_address(&peer), Some(key.address()));
        assert!(
            peer.to_string().starts_with("16Uiu2"),
            "secp256k1 PeerIds start 16Uiu2: {peer}"
        );
        let other = SecretKey::generate().expect("key");
        assert_ne!(peer_address(&peer), Some(other.address()));
        assert_eq!(peer_address(&PeerId::random()), None);
    }
}
