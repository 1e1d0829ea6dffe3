//! `GET /v1/cluster`: the replicas, who leads, and how far each has applied.

use std::time::Duration;

use axum::extract::State;
use axum::routing::{get, MethodRouter};
use axum::Json;
use machi_api::{ClusterView, HealthView, MemberView};

use super::{Access, AppState};

/// How long the answering replica waits for each other replica's `/v1/health`.
const MEMBER_HEALTH_TIMEOUT: Duration = Duration::from_millis(500);

pub(super) fn routes() -> Vec<(&'static str, Access, MethodRouter<AppState>)> {
    vec![("/v1/cluster", Access::Public, get(cluster))]
}

/// The replicas named on chain, the leader this replica knows of (null during an
/// election) and its term; each member's role and applied height, this replica's from
/// itself and the others' from their `/v1/health` (`unreachable` when they do not answer
/// within half a second). A node alone is a cluster of one: replica 1, its leader.
#[utoipa::path(get, path = "/v1/cluster", tag = "chain", responses((status = 200, body = ClusterView)))]
async fn cluster(State(state): State<AppState>) -> Json<ClusterView> {
    Json(view(&state).await)
}

/// The cluster as this replica sees it (also on the dashboard).
pub(super) async fn view(state: &AppState) -> ClusterView {
    let (shared, replication) = (&state.shared, &state.replicas);
    let (replicas, height) = {
        let chain = shared.chain.read().await;
        (chain.state.replicas.clone(), chain.head.height)
    };
    let (term, leader) = replication.get().map_or((0, None), |r| r.term_and_leader());
    let me = replication.get().map(|r| r.members.me);
    if replicas.is_empty() {
        let alone = MemberView {
            id: 1,
            name: "node".into(),
            api_addr: String::new(),
            role: replication.role().into(),
            applied_height: Some(height),
            voter: true,
        };
        return ClusterView { leader, term, members: vec![alone] };
    }
    let members = replicas.iter().map(|replica| async move {
        let (role, applied_height) = if Some(replica.id) == me {
            (replication.role().to_string(), Some(height))
        } else {
            match member_health(&shared.forwarding, &replica.api_addr).await {
                Some(health) => (health.role, Some(health.height)),
                None => ("unreachable".to_string(), None),
            }
        };
        MemberView {
            id: replica.id,
            name: replica.name.clone(),
            api_addr: replica.api_addr.clone(),
            role,
            applied_height,
            voter: replica.voter,
        }
    });
    ClusterView { leader, term, members: futures_util::future::join_all(members).await }
}

async fn member_health(http: &reqwest::Client, api_addr: &str) -> Option<HealthView> {
    let response =
        http.get(format!("http://{api_addr}/v1/health")).timeout(MEMBER_HEALTH_TIMEOUT).send().await.ok()?;
    response.json().await.ok()
}
