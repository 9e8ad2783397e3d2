//! `kubectl auth can-i` and `kubectl auth whoami`: SelfSubjectAccessReview and
//! SelfSubjectRulesReview (`authorization.k8s.io/v1`) answered from the same
//! rules the API enforces ([`crate::builtin::access`]), and SelfSubjectReview
//! (`authentication.k8s.io`) naming the token's user.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Api, Req, decode, json};
use crate::builtin::access;
use crate::error::Error;

const VERBS: [&str; 8] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Whether `resource` is one of the reviews this module answers.
pub(super) fn is_authorization_review(resource: &str) -> bool {
    matches!(
        resource,
        "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
    )
}

async fn body(req: Req) -> Result<Value, Error> {
    if req.method != Method::POST {
        return Err(Error::MethodNotAllowed);
    }
    let content_type = req.content_type().to_string();
    decode(&req.bytes().await?, &content_type)
}

pub(super) async fn authorization_review(
    api: &Api,
    resource: &str,
    req: Req,
) -> Result<Response, Error> {
    let mut review = body(req).await?;
    let status = if resource == "selfsubjectaccessreviews" {
        access_review(&review)?
    } else {
        rules_review(api)
    };
    let map = review
        .as_object_mut()
        .ok_or_else(|| Error::BadRequest("the review must be a JSON object".into()))?;
    map.insert("status".into(), status);
    map.entry("metadata")
        .or_insert_with(|| json!({"creationTimestamp": null}));
    Ok(json(StatusCode::CREATED, &review))
}

/// `status` of a SelfSubjectAccessReview.
fn access_review(review: &Value) -> Result<Value, Error> {
    if review.pointer("/spec/nonResourceAttributes").is_some() {
        return Ok(json!({"allowed": true}));
    }
    let attributes = review.pointer("/spec/resourceAttributes").ok_or_else(|| {
        Error::BadRequest(
            "SelfSubjectAccessReview spec needs resourceAttributes or nonResourceAttributes".into(),
        )
    })?;
    let field = |name: &str| attributes.get(name).and_then(Value::as_str).unwrap_or("");
    let (group, resource, subresource, verb) = (
        field("group"),
        field("resource"),
        field("subresource"),
        field("verb"),
    );
    let decision = if resource == "*" {
        // Some kinds refuse some verbs, so only reading is allowed on everything.
        if matches!(verb, "get" | "list" | "watch") {
            Ok(())
        } else {
            Err(
                "some kinds (Pods, Deployments, Events, …) are made by the engine and refuse this verb",
            )
        }
    } else if verb == "*" {
        match access::verbs(group, resource, subresource) {
            None => Ok(()),
            Some(_) => access::allowed(group, resource, subresource, "create")
                .and(access::allowed(group, resource, subresource, "update")),
        }
    } else {
        access::allowed(group, resource, subresource, verb)
    };
    Ok(match decision {
        Ok(()) => json!({"allowed": true}),
        Err(why) => json!({"allowed": false, "reason": why}),
    })
}

/// `status` of a SelfSubjectRulesReview: one rule per served resource.
fn rules_review(api: &Api) -> Value {
    let mut rules = Vec::new();
    for rt in api.resources.iter() {
        let verbs = access::verbs(&rt.group, &rt.plural, "").unwrap_or_else(|| VERBS.to_vec());
        rules.push(json!({"verbs": verbs, "apiGroups": [rt.group], "resources": [rt.plural]}));
        for (sub, verbs) in access::subresources(&rt.group, &rt.plural) {
            rules.push(json!({
                "verbs": verbs,
                "apiGroups": [rt.group],
                "resources": [format!("{}/{sub}", rt.plural)],
            }));
        }
        if rt.status_subresource && access::verbs(&rt.group, &rt.plural, "status").is_none() {
            rules.push(json!({
                "verbs": ["get", "update", "patch"],
                "apiGroups": [rt.group],
                "resources": [format!("{}/status", rt.plural)],
            }));
        }
    }
    rules.push(json!({
        "verbs": ["create"],
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
    }));
    rules.push(json!({
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    }));
    json!({
        "resourceRules": rules,
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["*"]}],
        "incomplete": false,
    })
}

/// `kubectl auth whoami` (v1 from kubectl 1.28, v1beta1 and v1alpha1 before).
pub(super) async fn self_subject_review(version: &str, req: Req) -> Result<Response, Error> {
    if !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
        return Err(super::not_found_path());
    }
    body(req).await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": format!("authentication.k8s.io/{version}"),
            "metadata": {"creationTimestamp": null},
            "status": {"userInfo": {"username": access::USER, "groups": access::GROUPS}},
        }),
    ))
}
