//! The authenticated handshake.
//!
//! Both sides send `Hello{pubkey, nonce, chain_id, engine}` (32 random bytes of nonce), then
//! `Auth{signature}` where the signature covers
//! `"tpslab/p2p-handshake/v1\0" || u32 BE len(chain_id) || chain_id || peer_nonce || own_nonce ||
//! own_pubkey`. Signing the peer's fresh nonce proves possession of the key now (no replay);
//! the key must belong to a genesis validator.

use crate::error::{P2pError, P2pResult};
use crate::wire::{Auth, Hello, PeerId};
use bytes::Bytes;
use ed25519_dalek::{Signer, SigningKey};
use futures::{SinkExt, StreamExt};
use prost::Message;
use rand::RngCore;
use std::collections::HashSet;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tpslab_types::sig::{self, SigPath};

const DOMAIN: &[u8] = b"tpslab/p2p-handshake/v1\0";

fn auth_bytes(chain_id: &str, peer_nonce: &[u8], own_nonce: &[u8], own_pubkey: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(DOMAIN.len() + 4 + chain_id.len() + 96);
    b.extend_from_slice(DOMAIN);
    b.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    b.extend_from_slice(chain_id.as_bytes());
    b.extend_from_slice(peer_nonce);
    b.extend_from_slice(own_nonce);
    b.extend_from_slice(own_pubkey);
    b
}

async fn recv(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    peer: &str,
    what: &str,
) -> P2pResult<bytes::BytesMut> {
    let fail = |reason: String| P2pError::Handshake {
        peer: peer.to_string(),
        reason,
    };
    framed
        .next()
        .await
        .ok_or_else(|| fail(format!("connection closed before {what}")))?
        .map_err(|e| fail(format!("reading {what}: {e}")))
}

/// The peer's `Hello` frame, decoded and checked: same chain and consensus engine, a key in `allowed` that is not
/// ours, a 32-byte nonce. Returns the peer and its nonce.
pub fn check_hello(
    frame: &[u8],
    chain_id: &str,
    engine: &str,
    own_pub: &[u8; 32],
    allowed: &HashSet<PeerId>,
    peer_addr: &str,
) -> P2pResult<(PeerId, Vec<u8>)> {
    let fail = |reason: String| P2pError::Handshake {
        peer: peer_addr.to_string(),
        reason,
    };
    let theirs = Hello::decode(frame).map_err(|e| fail(format!("malformed hello: {e}")))?;
    if theirs.chain_id != chain_id {
        return Err(fail(format!(
            "chain id {:?}, expected {chain_id:?}",
            theirs.chain_id
        )));
    }
    // A Raft node and a BFT node of the same chain id would misread each other's traffic.
    if theirs.engine != engine {
        return Err(fail(format!(
            "consensus engine {:?}, this chain runs {engine:?}",
            theirs.engine
        )));
    }
    let their_pub: [u8; 32] = theirs
        .pubkey
        .as_slice()
        .try_into()
        .map_err(|_| fail(format!("public key of {} bytes", theirs.pubkey.len())))?;
    let peer = PeerId(their_pub);
    if !allowed.contains(&peer) {
        return Err(P2pError::UnknownPeer {
            pubkey: their_pub.iter().map(|b| format!("{b:02x}")).collect(),
        });
    }
    if their_pub == *own_pub {
        return Err(fail("connected to ourselves".into()));
    }
    if theirs.nonce.len() != 32 {
        return Err(fail(format!("nonce of {} bytes", theirs.nonce.len())));
    }
    Ok((peer, theirs.nonce))
}

/// The peer's `Auth` frame, decoded and checked: its signature over our nonce, under the
/// project's one signature rule (as for votes and txs).
pub fn check_auth(
    frame: &[u8],
    chain_id: &str,
    own_nonce: &[u8],
    peer: &PeerId,
    peer_nonce: &[u8],
    peer_addr: &str,
) -> P2pResult<()> {
    let fail = |reason: String| P2pError::Handshake {
        peer: peer_addr.to_string(),
        reason,
    };
    let auth = Auth::decode(frame).map_err(|e| fail(format!("malformed auth: {e}")))?;
    let sig: [u8; 64] = auth
        .signature
        .as_slice()
        .try_into()
        .map_err(|_| fail("signature of wrong length".into()))?;
    sig::verify(
        &peer.0,
        &sig,
        &auth_bytes(chain_id, own_nonce, peer_nonce, &peer.0),
        SigPath::Handshake,
    )
    .map_err(|e| fail(format!("invalid handshake signature: {e}")))
}

/// Runs the handshake on a fresh connection; returns the authenticated peer id.
pub async fn handshake(
    framed: &mut Framed<TcpStream, LengthDelimitedCodec>,
    key: &SigningKey,
    chain_id: &str,
    engine: &str,
    allowed: &HashSet<PeerId>,
    peer_addr: &str,
) -> P2pResult<PeerId> {
    let fail = |reason: String| P2pError::Handshake {
        peer: peer_addr.to_string(),
        reason,
    };
    let own_pub = key.verifying_key().to_bytes();
    let mut nonce = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut nonce);
    let hello = Hello {
        pubkey: own_pub.to_vec(),
        nonce: nonce.to_vec(),
        chain_id: chain_id.to_string(),
        engine: engine.to_string(),
    };
    framed
        .send(Bytes::from(hello.encode_to_vec()))
        .await
        .map_err(|e| fail(format!("sending hello: {e}")))?;
    let frame = recv(framed, peer_addr, "hello").await?;
    let (peer, their_nonce) = check_hello(&frame, chain_id, engine, &own_pub, allowed, peer_addr)?;
    let sig = key.sign(&auth_bytes(chain_id, &their_nonce, &nonce, &own_pub));
    framed
        .send(Bytes::from(
            Auth {
                signature: sig.to_bytes().to_vec(),
            }
            .encode_to_vec(),
        ))
        .await
        .map_err(|e| fail(format!("sending auth: {e}")))?;
    let frame = recv(framed, peer_addr, "auth").await?;
    check_auth(&frame, chain_id, &nonce, &peer, &their_nonce, peer_addr)?;
    Ok(peer)
}
