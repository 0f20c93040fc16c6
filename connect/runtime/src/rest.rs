//! Kafka Connect's REST API over a [`Herder`] (a standalone [`crate::Worker`] or a
//! [`crate::DistributedWorker`]), so existing tooling (curl scripts, kcctl,
//! UIs) works: `GET /`, `GET|POST /connectors`, `GET|PUT|DELETE /connectors/{name}`,
//! `GET|PUT /connectors/{name}/config`, `GET /connectors/{name}/status`,
//! `POST /connectors/{name}/restart`, `PUT /connectors/{name}/pause|resume`,
//! `GET /connectors/{name}/tasks`, `GET /connectors/{name}/tasks/{id}/status`,
//! `GET /connector-plugins`. Errors are
//! `{"error_code": <HTTP status>, "message": "..."}` as Kafka Connect answers.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Shared};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};
use strom_connect_api::ConfigMap;

use crate::herder::Herder;
use crate::worker::State;
use crate::RuntimeError;

type Answer = Result<Response, ApiError>;

/// An error answer.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error_code": self.0.as_u16(), "message": self.1});
        (self.0, Json(body)).into_response()
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let status = match &e {
            RuntimeError::UnknownConnector(_) => StatusCode::NOT_FOUND,
            RuntimeError::ConnectorExists(_) => StatusCode::CONFLICT,
            RuntimeError::Config(_) | RuntimeError::Connect(_) => StatusCode::BAD_REQUEST,
            RuntimeError::Client(_) => StatusCode::INTERNAL_SERVER_ERROR,
            RuntimeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError(status, e.to_string())
    }
}

/// The API's routes over `worker`.
pub fn router(worker: Arc<dyn Herder>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/connectors", get(list).post(create))
        .route("/connectors/{name}", get(info).delete(delete))
        .route("/connectors/{name}/config", get(config).put(put_config))
        .route("/connectors/{name}/status", get(status))
        .route("/connectors/{name}/restart", post(restart))
        .route("/connectors/{name}/pause", put(pause))
        .route("/connectors/{name}/resume", put(resume))
        .route("/connectors/{name}/tasks", get(tasks))
        .route("/connectors/{name}/tasks/{task}/status", get(task_status))
        .route("/connector-plugins", get(plugins))
        .with_state(worker)
}

/// Serves the API on `listener` until the task is dropped.
///
/// # Errors
/// When the listener fails.
pub async fn serve(
    worker: Arc<dyn Herder>,
    listener: tokio::net::TcpListener,
) -> std::io::Result<()> {
    axum::serve(listener, router(worker)).await
}

async fn root() -> Json<Value> {
    Json(json!({"version": env!("CARGO_PKG_VERSION"), "commit": "strom"}))
}

fn connector_type(worker: &dyn Herder, config: &ConfigMap) -> &'static str {
    let class = config.get("connector.class").map_or("", String::as_str);
    match worker.plugins().get(class) {
        Some((crate::Plugin::Sink(_), _)) => "sink",
        _ => "source",
    }
}

async fn connector_info(worker: &dyn Herder, name: &str) -> Result<Value, ApiError> {
    let config = worker.config(name).await?;
    let tasks: Vec<Value> = (0..worker.task_configs(name).await?.len())
        .map(|task| json!({"connector": name, "task": task}))
        .collect();
    Ok(json!({
        "name": name,
        "config": config,
        "tasks": tasks,
        "type": connector_type(worker, &config),
    }))
}

async fn status_json(worker: &dyn Herder, name: &str) -> Result<Value, ApiError> {
    let status = worker.status(name).await?;
    let config = worker.config(name).await?;
    let state = |state: &State, worker_id: &str| {
        let mut object = json!({"state": state.name(), "worker_id": worker_id});
        if let State::Failed(trace) = state {
            object["trace"] = json!(trace);
        }
        object
    };
    let tasks: Vec<Value> = status
        .tasks
        .iter()
        .map(|t| {
            let mut task = state(&t.state, &t.worker_id);
            task["id"] = json!(t.id);
            task
        })
        .collect();
    Ok(json!({
        "name": name,
        "connector": state(&status.state, &status.worker_id),
        "tasks": tasks,
        "type": connector_type(worker, &config),
    }))
}

/// `GET /connectors`, with `?expand=status` and/or `?expand=info` (repeated or
/// comma-separated).
async fn list(
    Shared(worker): Shared<Arc<dyn Herder>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Answer {
    let names = worker.connectors().await;
    let expand: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "expand")
        .flat_map(|(_, v)| v.split(','))
        .collect();
    if expand.is_empty() {
        return Ok(Json(json!(names)).into_response());
    }
    let mut all = serde_json::Map::new();
    for name in names {
        let mut entry = serde_json::Map::new();
        for what in &expand {
            match *what {
                "status" => {
                    entry.insert("status".into(), status_json(worker.as_ref(), &name).await?)
                }
                "info" => {
                    entry.insert("info".into(), connector_info(worker.as_ref(), &name).await?)
                }
                other => {
                    return Err(ApiError(
                        StatusCode::BAD_REQUEST,
                        format!("expand is status or info, not {other}"),
                    ))
                }
            };
        }
        all.insert(name, Value::Object(entry));
    }
    Ok(Json(Value::Object(all)).into_response())
}

/// A JSON body's config object as strings (numbers and booleans taken as their text).
fn config_of(value: &Value) -> Result<ConfigMap, ApiError> {
    let Value::Object(object) = value else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "config is a JSON object of strings".to_owned(),
        ));
    };
    Ok(object
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), String::from);
            (k.clone(), v)
        })
        .collect())
}

async fn create(Shared(worker): Shared<Arc<dyn Herder>>, body: Option<Json<Value>>) -> Answer {
    let Some(Json(body)) = body else {
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            "the body is {\"name\": ..., \"config\": {...}}".to_owned(),
        ));
    };
    let name = body
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError(StatusCode::BAD_REQUEST, "name is missing".to_owned()))?
        .to_owned();
    let mut config = config_of(body.get("config").unwrap_or(&Value::Null))?;
    config.insert("name".to_owned(), name.clone());
    worker.add_connector(&name, config).await?;
    Ok((
        StatusCode::CREATED,
        Json(connector_info(worker.as_ref(), &name).await?),
    )
        .into_response())
}

async fn info(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    Ok(Json(connector_info(worker.as_ref(), &name).await?).into_response())
}

async fn delete(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    worker.remove_connector(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn config(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    Ok(Json(json!(worker.config(&name).await?)).into_response())
}

async fn put_config(
    Shared(worker): Shared<Arc<dyn Herder>>,
    Path(name): Path<String>,
    Json(body): Json<Value>,
) -> Answer {
    let mut config = config_of(&body)?;
    config.insert("name".to_owned(), name.clone());
    let created = worker.put_config(&name, config).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(connector_info(worker.as_ref(), &name).await?)).into_response())
}

async fn status(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    Ok(Json(status_json(worker.as_ref(), &name).await?).into_response())
}

async fn restart(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    worker.restart(&name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn pause(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    worker.pause(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn resume(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    worker.resume(&name).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn tasks(Shared(worker): Shared<Arc<dyn Herder>>, Path(name): Path<String>) -> Answer {
    let tasks: Vec<Value> = worker
        .task_configs(&name)
        .await?
        .into_iter()
        .enumerate()
        .map(|(task, config)| json!({"id": {"connector": name, "task": task}, "config": config}))
        .collect();
    Ok(Json(json!(tasks)).into_response())
}

async fn task_status(
    Shared(worker): Shared<Arc<dyn Herder>>,
    Path((name, task)): Path<(String, usize)>,
) -> Answer {
    let status = status_json(worker.as_ref(), &name).await?;
    let found = status["tasks"]
        .as_array()
        .and_then(|tasks| tasks.iter().find(|t| t["id"] == json!(task)))
        .cloned()
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no task {task} of {name}")))?;
    Ok(Json(found).into_response())
}

async fn plugins(Shared(worker): Shared<Arc<dyn Herder>>) -> Json<Value> {
    let plugins: Vec<Value> = worker
        .plugins()
        .classes()
        .into_iter()
        .map(|(class, source)| {
            json!({
                "class": class,
                "type": if source { "source" } else { "sink" },
                "version": env!("CARGO_PKG_VERSION"),
            })
        })
        .collect();
    Json(json!(plugins))
}
