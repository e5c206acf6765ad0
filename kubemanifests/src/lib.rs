//! Kubernetes manifests as text: YAML streams read the way the API server reads them, and the
//! container images they name, found and rewritten. The bundler uses it to discover what a chart
//! needs; the installer to point rendered objects at the site registry and to find the pod specs
//! and containers it changes and checks.
//!
//! It must not know about bundles, registries or any platform: it sees YAML and image strings.

mod images;
pub mod pods;
mod stream;

pub use images::{image_at, images, rewrite_images};
pub use stream::{parse_stream, to_stream};
