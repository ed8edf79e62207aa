//! HTTP/1.1 handling on the request path.

pub mod path;

#[cfg(test)]
mod path_model_tests;
