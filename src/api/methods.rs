//! Resources that know their methods: one path, its handlers by method, and for any other
//! method a 405 `method_not_allowed` whose `Allow` header lists the methods the path accepts.
//! (Routes registered one method at a time would let a wrong method fall through to 404.)
//!
//! Each resource also remembers its path and methods, and [`scope`] and [`Table`] join them
//! with their prefixes while `configure` runs, so the table of what the server serves is read
//! from the registration itself ([`super::routes`]): the OpenAPI document is checked against it
//! (every registered path and method documented, nothing else). Actix keeps no such listing,
//! and a list written beside `configure` could drift from it.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};

use crate::error::ApiError;

/// A registered path (scope prefixes joined, `{param}` names as written) and its methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub path: String,
    pub methods: Vec<Method>,
}

/// A service that knows the routes it registers.
pub trait Recorded: HttpServiceFactory + 'static {
    fn routes(&self) -> Vec<Route>;
}

/// A path being given its methods (see [`resource`]).
pub struct Resource {
    inner: actix_web::Resource,
    path: String,
    allowed: Vec<Method>,
}

/// The resource at `path` (relative to the enclosing scope), with no method yet.
pub fn resource(path: &str) -> Resource {
    Resource {
        inner: web::resource(path),
        path: path.to_string(),
        allowed: Vec::new(),
    }
}

impl Recorded for Resource {
    fn routes(&self) -> Vec<Route> {
        vec![Route {
            path: self.path.clone(),
            methods: self.allowed.clone(),
        }]
    }
}

/// A scope whose resources (and nested scopes) are recorded under its prefix.
pub struct Scope {
    inner: actix_web::Scope,
    prefix: String,
    routes: Vec<Route>,
}

/// The scope at `prefix` (relative to the enclosing one).
pub fn scope(prefix: &str) -> Scope {
    Scope {
        inner: web::scope(prefix),
        prefix: prefix.to_string(),
        routes: Vec::new(),
    }
}

impl Scope {
    pub fn service(mut self, service: impl Recorded) -> Self {
        self.routes.extend(service.routes());
        self.inner = self.inner.service(service);
        self
    }
}

impl Recorded for Scope {
    fn routes(&self) -> Vec<Route> {
        let prefixed = |r: &Route| Route {
            path: format!("{}{}", self.prefix, r.path),
            methods: r.methods.clone(),
        };
        self.routes.iter().map(prefixed).collect()
    }
}

impl HttpServiceFactory for Scope {
    fn register(self, config: &mut AppService) {
        self.inner.register(config)
    }
}

/// The application's top level: registers services and keeps the table of their routes.
pub struct Table<'a> {
    cfg: &'a mut web::ServiceConfig,
    routes: Vec<Route>,
}

impl<'a> Table<'a> {
    pub fn new(cfg: &'a mut web::ServiceConfig) -> Self {
        Table {
            cfg,
            routes: Vec::new(),
        }
    }

    pub fn service(mut self, service: impl Recorded) -> Self {
        self.routes.extend(service.routes());
        self.cfg.service(service);
        self
    }

    /// The routes registered, in order.
    pub fn finish(self) -> Vec<Route> {
        self.routes
    }
}

macro_rules! methods {
    ($($name:ident => $method:ident),*) => {
        impl Resource {
            $(
                #[doc = concat!("Serves `", stringify!($method), "` with `handler`.")]
                pub fn $name<F, Args>(self, handler: F) -> Self
                where
                    F: Handler<Args>,
                    Args: FromRequest + 'static,
                    F::Output: Responder + 'static,
                {
                    self.on(Method::$method, handler)
                }
            )*
        }
    };
}

methods!(get => GET, post => POST, patch => PATCH, delete => DELETE);

impl Resource {
    fn on<F, Args>(mut self, method: Method, handler: F) -> Self
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.inner = self
            .inner
            .route(web::route().method(method.clone()).to(handler));
        self.allowed.push(method);
        self
    }

    /// The value of `Allow`: the path's methods, in the order they were given.
    fn allow(&self) -> String {
        let names: Vec<&str> = self.allowed.iter().map(Method::as_str).collect();
        names.join(", ")
    }
}

impl HttpServiceFactory for Resource {
    fn register(self, config: &mut AppService) {
        let allow = self.allow();
        let refuse = move || {
            let allow = allow.clone();
            async move { Err::<HttpResponse, _>(ApiError::MethodNotAllowed { allow }) }
        };
        self.inner.default_service(web::to(refuse)).register(config)
    }
}
