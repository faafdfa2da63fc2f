//! The compiled contract committed under `contracts/artifacts/`, embedded in the binary.

use serde::Deserialize;

use crate::error::ChainError;

const ARTIFACT_JSON: &str = include_str!("../../contracts/artifacts/ProofOfCompute.json");

/// The parts of the artifact the chain crate uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Artifact {
    /// Compiler long version.
    pub compiler: String,
    /// Creation bytecode, 0x-hex.
    pub bytecode: String,
    /// Runtime bytecode, 0x-hex.
    #[serde(rename = "deployedBytecode")]
    pub deployed_bytecode: String,
}

impl Artifact {
    /// The embedded artifact.
    pub fn embedded() -> Result<Artifact, ChainError> {
        serde_json::from_str(ARTIFACT_JSON).map_err(|e| ChainError::Artifact(e.to_string()))
    }

    /// Creation bytecode as bytes.
    pub fn creation_code(&self) -> Result<Vec<u8>, ChainError> {
        pocmesh_protocol::bytes::decode_hex(&self.bytecode).map_err(ChainError::Artifact)
    }

    /// Runtime bytecode as bytes (what `eth_getCode` returns after deployment).
    pub fn runtime_code(&self) -> Result<Vec<u8>, ChainError> {
        pocmesh_protocol::bytes::decode_hex(&self.deployed_bytecode).map_err(ChainError::Artifact)
    }
}
