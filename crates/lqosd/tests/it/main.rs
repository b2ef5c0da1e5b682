//! lqosd integration tests: the `[tuning]` kernel test (module `tuning`, root only). The web
//! API tests moved with the web server to lqos-web.

mod tuning;
