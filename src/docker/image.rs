//! Copying an image from one engine to another (the restore lab): `GET
//! /images/{id}/get` on the source (a read, which a lab-mode production proxy allows)
//! streamed straight into `POST /images/load` on the target, chunk by chunk, so an image
//! of any size moves with flat memory and never touches the disk of this machine.

use super::{Docker, DockerError};
use bollard::errors::Error as BollardError;
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How long one image copy may take in all. bollard's per-call timeout (two minutes)
/// covers the whole request, upload included: a 500 MB image on a loaded machine takes
/// longer than that (seen: "POST /images/load failed: Timeout error").
const COPY_WITHIN: Duration = Duration::from_secs(60 * 60);

impl Docker {
    /// Whether this engine holds `image` (an id or a reference).
    pub async fn has_image(&self, image: &str) -> Result<bool, DockerError> {
        match self.api.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(self.map_err(
                "GET",
                &format!("/images/{image}/json"),
                &format!("image `{image}`"),
                e,
            )),
        }
    }

    /// Stream `image` from this engine into `to`; returns the bytes moved. A failure on
    /// either side names its engine's call.
    pub async fn copy_image_to(&self, image: &str, to: &Docker) -> Result<u64, DockerError> {
        let moved = Arc::new(AtomicU64::new(0));
        let counter = moved.clone();
        let export_path = format!("/images/{image}/get");
        // The export's error, kept typed for the message (the load side only sees text).
        let failed: Arc<std::sync::Mutex<Option<BollardError>>> = Default::default();
        let failed_in = failed.clone();
        let (from, into) = (
            self.api.clone().with_timeout(COPY_WITHIN),
            to.api.clone().with_timeout(COPY_WITHIN),
        );
        let tar = from.export_image(image).map(move |chunk| match chunk {
            Ok(b) => {
                counter.fetch_add(b.len() as u64, Ordering::Relaxed);
                Ok(b)
            }
            Err(e) => {
                let text = e.to_string();
                if let Ok(mut f) = failed_in.lock() {
                    *f = Some(e);
                }
                Err(std::io::Error::other(text))
            }
        });
        let opts = bollard::query_parameters::ImportImageOptionsBuilder::new()
            .quiet(true)
            .build();
        let mut answers = into.import_image_stream(opts, tar, None);
        let mut load_err = None;
        while let Some(a) = answers.next().await {
            if let Err(e) = a {
                load_err = Some(e);
                break;
            }
        }
        drop(answers);
        let exported = failed.lock().ok().and_then(|mut f| f.take());
        if let Some(e) = exported {
            return Err(self.map_err("GET", &export_path, &format!("image `{image}`"), e));
        }
        if let Some(e) = load_err {
            return Err(to.map_err("POST", "/images/load", &format!("image `{image}`"), e));
        }
        Ok(moved.load(Ordering::Relaxed))
    }
}
