//! lqosd: the lqos daemon. This library part holds the web layer (`web`), which talks to the
//! apply task only through lqos-bus commands.
#![forbid(unsafe_code)]

pub mod web;
