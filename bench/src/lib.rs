//! The benchmarks' shared parts: the synthetic FHIR data ([`synth`]) and the load generators'
//! HTTP/1.1 connection ([`http1`]). The data's own file is kept apart from anything else
//! because `bench/search.sh` keys its loaded databases by a hash of `synth.rs`.

pub mod http1;
pub mod synth;
