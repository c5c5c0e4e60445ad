//! Evaluation: protocols that split a labelled folder into gallery, genuine and impostor probes
//! ([`protocol`]), embedding them with the real pipeline ([`run`]), and the open-set metrics
//! ([`metrics`]).

pub mod liveness;
pub mod metrics;
pub mod protocol;
pub mod run;
