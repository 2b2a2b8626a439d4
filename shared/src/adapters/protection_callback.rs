//! GitHub's deployment protection rule callback, on the forge client:
//! `POST {api}/repos/{owner}/{repo}/actions/runs/{run}/deployment_protection_rule`
//! `{"environment_name","state","comment"}` (no `state`: a status report),
//! with the installation token of the App installation the request came
//! through.
//!
//! The callback URL comes in the webhook; only its path is taken, checked to
//! be a protection rule callback, and put under the configured API URL
//! (`CHANGEHUB_GITHUB_API_URL`), so the installation token is never sent
//! anywhere else.

use reqwest::{Method, Url};

use super::scm::ForgeClient;
use crate::domain::gate::protection::ProtectionRequest;
use crate::domain::gate::pulls::Forge;
use crate::ports::{CallbackPost, ForgeCredentials, ProtectionCallbacks, ScmError};

/// The callback path's segments after the API root: `repos/{owner}/{repo}/actions/runs/{run}/deployment_protection_rule`.
fn callback_segments(callback_url: &str) -> Result<Vec<String>, ScmError> {
    let invalid = |why: &str| ScmError::Invalid {
        forge: Forge::Github,
        source: format!("the deployment_callback_url {why}").into(),
    };
    let url = Url::parse(callback_url).map_err(|_| invalid("is not a URL"))?;
    let segments: Vec<&str> = url.path_segments().ok_or_else(|| invalid("has no path"))?.collect();
    let start = segments.iter().position(|s| *s == "repos").ok_or_else(|| invalid("names no repository"))?;
    match &segments[start..] {
        ["repos", owner, repo, "actions", "runs", run, "deployment_protection_rule"]
            if !owner.is_empty() && !repo.is_empty() && run.chars().all(|c| c.is_ascii_digit()) && !run.is_empty() =>
        {
            Ok(segments[start..].iter().map(|s| (*s).to_owned()).collect())
        }
        _ => Err(invalid("is not repos/{owner}/{repo}/actions/runs/{run}/deployment_protection_rule")),
    }
}

impl<C: ForgeCredentials> ProtectionCallbacks for ForgeClient<C> {
    async fn post_callback(&self, request: &ProtectionRequest, post: &CallbackPost<'_>) -> Result<(), ScmError> {
        let segments = callback_segments(&request.callback_url)?;
        let mut url = self.endpoints().github_api.clone();
        url.path_segments_mut()
            .map_err(|()| ScmError::Invalid { forge: Forge::Github, source: "the API URL cannot take a path".into() })?
            .pop_if_empty()
            .extend(&segments);
        let mut body = serde_json::json!({ "environment_name": post.environment, "comment": post.comment });
        let what = match post.state {
            Some(state) => {
                body["state"] = state.as_str().into();
                "the deployment protection rule answer"
            }
            None => "the deployment protection rule status report",
        };
        let target = (request.repository.as_str(), request.installation);
        self.github(&request.tenant, target, what, Method::POST, &url, Some(&body)).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_protection_rule_callback_path_is_taken() {
        let ok = callback_segments(
            "https://ghe.example.com/api/v3/repos/acme/pay/actions/runs/42/deployment_protection_rule",
        )
        .expect("ghes");
        assert_eq!(ok.join("/"), "repos/acme/pay/actions/runs/42/deployment_protection_rule");
        for bad in [
            "https://evil.example.com/steal",
            "https://api.github.com/repos/acme/pay/statuses/abc",
            "https://api.github.com/repos/acme/pay/actions/runs/x1/deployment_protection_rule",
            "not a url",
        ] {
            assert!(callback_segments(bad).is_err(), "{bad}");
        }
    }
}
