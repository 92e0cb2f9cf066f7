//! The benchmarks' shared parts: the synthetic FHIR data ([`synth`]), the load generators'
//! HTTP/1.1 connection ([`http1`]) and their first-failure record ([`first_error`]). The data's own file is kept apart from anything else
//! because `bench/search.sh` keys its loaded databases by a hash of `synth.rs`.

pub mod first_error;
pub mod http1;
pub mod synth;
