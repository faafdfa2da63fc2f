//! The network name read from the chain: a stand-in JSON-RPC server on 127.0.0.1 answers
//! `eth_chainId`; a closed port stands for an unreachable RPC.

use axum::Json;
use axum::Router;
use axum::routing::post;
use pocmesh_node::network_name::{NetworkNameError, resolve};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// Serves `eth_chainId` = `chain_id` until the returned token is dropped.
async fn rpc(chain_id: u64) -> (String, tokio_util::sync::DropGuard) {
    let app = Router::new().route(
        "/",
        post(move |Json(request): Json<Value>| async move {
            assert_eq!(
                request["method"], "eth_chainId",
                "only the chain id is asked"
            );
            Json(json!({
                "jsonrpc": "2.0",
                "id": request["id"],
                "result": format!("{chain_id:#x}"),
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    let stopped = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(stopped.cancelled_owned())
            .await;
    });
    (url, stop.drop_guard())
}

#[tokio::test]
async fn the_network_comes_from_the_chain_and_a_different_net_is_refused() {
    let (url, _server) = rpc(551).await;
    assert_eq!(resolve(None, &url).await, Ok("devnet-551".to_string()));
    assert_eq!(
        resolve(Some("devnet-551"), &url).await,
        Ok("devnet-551".to_string())
    );
    let e = resolve(Some("xdc-apothem"), &url)
        .await
        .expect_err("another network");
    assert!(
        matches!(e, NetworkNameError::Mismatch { chain_id: 551, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("drop --net"), "{e}");

    let (apothem, _apothem_server) = rpc(51).await;
    assert_eq!(resolve(None, &apothem).await, Ok("xdc-apothem".to_string()));
}

#[tokio::test]
async fn an_unreachable_rpc_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let e = resolve(None, &url).await.expect_err("nothing listens");
    assert!(matches!(e, NetworkNameError::Unreachable { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains(&url) && text.contains("--rpc"), "{text}");
}
