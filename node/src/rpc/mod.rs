//! The gRPC API (CONTRACT section 5).
