//! Resources that know their methods: one path, its handlers by method, and for any other
//! method a 405 `method_not_allowed` whose `Allow` header lists the methods the path accepts.
//! (Routes registered one method at a time would let a wrong method fall through to 404.)

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};

use crate::error::ApiError;

/// A path being given its methods (see [`resource`]).
pub struct Resource {
    inner: actix_web::Resource,
    allowed: Vec<Method>,
}

/// The resource at `path` (relative to the enclosing scope), with no method yet.
pub fn resource(path: &str) -> Resource {
    Resource {
        inner: web::resource(path),
        allowed: Vec::new(),
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
