//! Rebuild the bindings whenever the committed contract artifact changes.
fn main() {
    println!("cargo:rerun-if-changed=../contracts/artifacts/ProofOfCompute.abi.json");
    println!("cargo:rerun-if-changed=../contracts/artifacts/ProofOfCompute.json");
}
