//! Tests over pydicom's bundled files (see `support` for how they are found) and data sets
//! built here.

mod build;
mod json;
mod parse;
mod pixels;
mod robust;
mod support;
