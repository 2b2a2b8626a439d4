//! `/findings`: unauthorized-change findings, and their acknowledgement,
//! link to a retroactive emergency change, or dismissal; and
//! `/changes/{id}/evidence`, what the drift consumer saw a change do.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::extract::{ChangeIdPath, JsonBody, PathText};
use super::query::TypedQuery;
use super::{Api, ApiError, AppState, Routes};
use crate::app::Caller;
use crate::app::changes::ChangeStore;
use crate::app::findings::{AcknowledgeRequest, DismissRequest, FindingListRequest, LinkRequest};
use crate::domain::ChangeId;
use crate::domain::finding::change_evidence::ChangeEvidence;
use crate::domain::finding::{Finding, FindingId};
use crate::ports::{ActivityLog, Clock, FindingStore, ProblemStore};

/// `GET /findings`: every filter optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindingsQuery {
    service: Option<String>,
    status: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of findings.
#[derive(serde::Serialize)]
struct FindingList<'a> {
    findings: &'a [Finding],
    next_cursor: Option<&'a str>,
}

/// `GET /changes/{id}/evidence`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceQuery {
    limit: Option<usize>,
    cursor: Option<String>,
}

/// A page of a change's evidence.
#[derive(serde::Serialize)]
struct EvidenceList<'a> {
    change_id: ChangeId,
    evidence: &'a [ChangeEvidence],
    next_cursor: Option<&'a str>,
}

fn finding_id(id: &str) -> Result<FindingId, ApiError> {
    Ok(FindingId::parse(id).map_err(crate::app::ChangeError::from)?)
}

impl<S: ChangeStore + ActivityLog + ProblemStore + FindingStore, C: Clock + 'static> Api<S, C> {
    pub(super) fn finding_routes(routes: Routes<S, C>) -> Routes<S, C> {
        routes
            .route("/findings", get(Self::list_findings))
            .route("/findings/{id}", get(Self::get_finding))
            .route("/findings/{id}/acknowledge", post(Self::acknowledge_finding))
            .route("/findings/{id}/link", post(Self::link_finding))
            .route("/findings/{id}/dismiss", post(Self::dismiss_finding))
            .route("/changes/{id}/evidence", get(Self::change_evidence))
    }

    async fn change_evidence(
        State(app): AppState<S, C>,
        caller: Caller,
        ChangeIdPath(id): ChangeIdPath,
        TypedQuery(q): TypedQuery<EvidenceQuery>,
    ) -> Result<Response, ApiError> {
        let page = app.change_evidence(&caller, &id, q.limit, q.cursor.as_deref()).await?;
        Ok(Json(EvidenceList { change_id: id, evidence: &page.items, next_cursor: page.next.as_deref() })
            .into_response())
    }

    async fn list_findings(
        State(app): AppState<S, C>,
        caller: Caller,
        TypedQuery(q): TypedQuery<FindingsQuery>,
    ) -> Result<Response, ApiError> {
        let req =
            FindingListRequest { service: q.service, status: q.status, kind: q.kind, limit: q.limit, cursor: q.cursor };
        let page = app.findings(&caller, req).await?;
        Ok(Json(FindingList { findings: &page.items, next_cursor: page.next.as_deref() }).into_response())
    }

    async fn get_finding(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.finding(&caller, &finding_id(&id)?).await?).into_response())
    }

    async fn acknowledge_finding(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<AcknowledgeRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.acknowledge_finding(&caller, &finding_id(&id)?, &req).await?).into_response())
    }

    async fn link_finding(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<LinkRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.link_finding(&caller, &finding_id(&id)?, &req).await?).into_response())
    }

    async fn dismiss_finding(
        State(app): AppState<S, C>,
        caller: Caller,
        PathText(id): PathText<String>,
        JsonBody(req): JsonBody<DismissRequest>,
    ) -> Result<Response, ApiError> {
        Ok(Json(app.dismiss_finding(&caller, &finding_id(&id)?, &req).await?).into_response())
    }
}
