//! The cold-start baseline: a hello-world lambda_runtime function that echoes
//! its event. `infra/coldstart.py` compares every function's init against it.

use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<_, Error>(event.payload) })).await
}
