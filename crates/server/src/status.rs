//! Every status the server sends, decided here and nowhere else: what each
//! problem maps to on the wire (`google.rpc.Status` in a response, or a
//! gRPC status ending a stream).

use mixer_adapters::Status as Decision;
use mixer_proto::code;
use mixer_proto::google::rpc::Status as RpcStatus;

/// OK, with no message.
pub(crate) fn ok() -> RpcStatus {
    RpcStatus {
        code: code::OK,
        message: String::new(),
        details: Vec::new(),
    }
}

/// A decision of the dispatcher (a denial keeps its adapter's code).
pub(crate) fn decision(d: Decision) -> RpcStatus {
    RpcStatus {
        code: d.code,
        message: d.message,
        details: Vec::new(),
    }
}

/// An attribute update that cannot be applied: the stream goes on, the
/// context is unchanged.
pub(crate) fn invalid_update(e: &mixer_attributes::Error) -> RpcStatus {
    invalid(format!("attribute_update: {e}"))
}

/// A request whose envelope is not valid protobuf.
pub(crate) fn malformed(reason: &str) -> RpcStatus {
    invalid(reason.to_string())
}

/// A message over the server's message limit: answered on its own, as
/// every other bound of wire.md is (`INVALID_ARGUMENT`, not the
/// `RESOURCE_EXHAUSTED` that means a quota or a denial to a proxy), and the
/// stream goes on.
pub(crate) fn too_large(size: usize, limit: usize) -> RpcStatus {
    invalid(format!(
        "request message is {size} bytes, over the server's limit of {limit} bytes; \
         its attribute_update was not applied"
    ))
}

/// A quota request without a quota name.
pub(crate) fn missing_quota_name() -> RpcStatus {
    invalid("quota: the quota name is required".into())
}

fn invalid(message: String) -> RpcStatus {
    RpcStatus {
        code: code::INVALID_ARGUMENT,
        message,
        details: Vec::new(),
    }
}

/// Load shedding: the request is refused before any work; the client may
/// retry (elsewhere, or later).
pub(crate) fn overloaded(limit: usize) -> RpcStatus {
    RpcStatus {
        code: code::UNAVAILABLE,
        message: format!(
            "server overloaded: {limit} requests already in flight (the server's limit); retry later"
        ),
        details: Vec::new(),
    }
}

/// A new stream refused because the server holds its maximum.
pub(crate) fn too_many_streams(limit: usize) -> tonic::Status {
    tonic::Status::unavailable(format!(
        "server overloaded: {limit} streams open (the server's limit); retry later"
    ))
}

/// A new stream refused because the server is shutting down.
pub(crate) fn shutting_down() -> tonic::Status {
    tonic::Status::unavailable("server shutting down; retry on another instance")
}
