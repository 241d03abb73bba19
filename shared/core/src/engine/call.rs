//! One provider request under the engine's retry policy: honour `Retry-After`, back off
//! exponentially with jitter on transient failures, refresh once on a rejected token, and turn
//! a wait longer than the time left into a delayed continuation instead of a sleep. Each
//! request is bounded by the time left before the deadline (less the margin). Every answer
//! also feeds the step's transfer pace (`batch.rs`): a 429 or 503 is a throttle signal, a
//! normal answer a success.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::{Engine, RunCtx, Stop};
use crate::ports::{ProviderError, RateScope};
use crate::secret::Secret;

/// Exponential backoff: `base * 2^(attempt-1)`, capped, plus up to `jitter` of random delay.
#[derive(Debug, Clone)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
    pub jitter: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(1), cap: Duration::from_secs(16), jitter: Duration::from_secs(1) }
    }
}

impl Backoff {
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let jitter_ms = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        let jitter = if jitter_ms == 0 { 0 } else { rand::rng().random_range(0..=jitter_ms) };
        exp.min(self.cap) + Duration::from_millis(jitter)
    }
}

impl Engine {
    /// `Ok(Err(e))`: the request failed for good (not found, refused, retries exhausted) and
    /// the caller decides what that means for the item or the run. `Err(stop)`: the run step
    /// must end (reauth, a long wait, lease lost).
    pub(crate) async fn call<T, F, Fut>(
        &self,
        ctx: &RunCtx,
        mut request: F,
    ) -> Result<Result<T, ProviderError>, Stop>
    where
        F: FnMut(Secret) -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            // Bounded by the time left: a slow or stalled request cannot carry the invocation
            // past its deadline (the step ends and a continuation asks again).
            let left = self.time_left(ctx);
            if left.is_zero() {
                return Err(Stop::Deadline);
            }
            // Another request of this step was told to wait (`Retry-After`): so is this one.
            let held = ctx.pace.held_for(self.ports.clock.now());
            if !held.is_zero() {
                if held > left {
                    return Err(Stop::Wait(held));
                }
                self.ports.clock.sleep(held).await;
                attempt -= 1; // waiting for another request's hold is not an attempt
                continue;
            }
            let access = super::batch::lock(&ctx.access).clone();
            let sent_in = ctx.pace.epoch();
            let error = match tokio::time::timeout(left, request(access.clone())).await {
                Err(_) => return Err(Stop::Deadline),
                Ok(Ok(v)) => {
                    ctx.pace.succeeded();
                    return Ok(Ok(v));
                }
                Ok(Err(e)) => e,
            };
            if matches!(
                error,
                ProviderError::RateLimited { scope: RateScope::Request | RateScope::Grant, .. }
                    | ProviderError::Transient(_)
            ) && let Some(limit) = ctx.pace.throttled(sent_in)
            {
                tracing::info!(limit, error = %error, "provider throttling: fewer transfers at once");
            }
            let wait = match &error {
                ProviderError::Unauthorized if !refreshed => {
                    refreshed = true;
                    // `access` names the rejected token: a transfer running beside this one
                    // may have refreshed it already, and then that fresh one is used.
                    let fresh = self.token(&ctx.grant, Some(&access)).await?;
                    *super::batch::lock(&ctx.access) = fresh;
                    continue;
                }
                ProviderError::Reauth(_) => {
                    self.tokens.mark_reauth(&ctx.grant).await?;
                    return Err(Stop::Reauth);
                }
                // One file throttled: that file waits for a later run; the others go on.
                ProviderError::RateLimited { scope: RateScope::File, .. } => return Ok(Err(error)),
                // The whole grant throttled: the run waits (a continuation when it is long), and
                // so does every other run on the grant, in any worker (`GrantStore::pause`).
                ProviderError::RateLimited { scope: RateScope::Grant, retry_after } => {
                    let wait = retry_after.unwrap_or_else(|| self.config.backoff.delay(attempt));
                    self.pause_grant(ctx, wait).await;
                    if wait > self.time_left(ctx) {
                        return Err(Stop::Wait(wait));
                    }
                    wait
                }
                ProviderError::RateLimited { retry_after, .. } => {
                    retry_after.unwrap_or_else(|| self.config.backoff.delay(attempt))
                }
                ProviderError::Transient(_) => self.config.backoff.delay(attempt),
                _ => return Ok(Err(error)),
            };
            if attempt >= self.config.max_request_attempts {
                return Ok(Err(error));
            }
            if wait > self.time_left(ctx) {
                return Err(Stop::Wait(wait));
            }
            if matches!(
                error,
                ProviderError::RateLimited { retry_after: Some(_), scope: RateScope::Request }
                    | ProviderError::RateLimited { scope: RateScope::Grant, .. }
            ) {
                ctx.pace.hold(self.ports.clock.now() + chrono::Duration::from_std(wait).unwrap_or_default());
            }
            tracing::debug!(wait_ms = wait.as_millis() as u64, attempt, error = %error, "provider request will be retried");
            self.ports.clock.sleep(wait).await;
            self.heartbeat(ctx).await?;
        }
    }
}

impl Engine {
    /// Records a grant-wide rate limit of `wait` from now in the store, so that the grant's
    /// other connections (other workers) wait too. One conditional write, skipped when this
    /// step already holds at least that long (concurrent transfers all refused at once write
    /// once). A failed write is logged, not fatal: this run waits either way.
    async fn pause_grant(&self, ctx: &RunCtx, wait: Duration) {
        let now = self.ports.clock.now();
        if ctx.pace.held_for(now) >= wait {
            return;
        }
        let until = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        ctx.pace.hold(until);
        match self.ports.grants.pause(&ctx.grant.client_id, &ctx.grant.id, until).await {
            Ok(()) => {
                tracing::info!(grant = %ctx.grant.id, wait_s = wait.as_secs(), "provider account rate limited: its connections pause")
            }
            Err(e) => {
                tracing::warn!(grant = %ctx.grant.id, error = %e, "could not record the account's rate limit; other workers will meet it themselves")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_jitters_within_bounds() {
        let b =
            Backoff { base: Duration::from_secs(1), cap: Duration::from_secs(16), jitter: Duration::ZERO };
        let d: Vec<u64> = (1..=7).map(|a| b.delay(a).as_secs()).collect();
        assert_eq!(d, [1, 2, 4, 8, 16, 16, 16]);
        let j = Backoff::default();
        for a in 1..10 {
            let x = j.delay(a);
            assert!(x >= Duration::from_secs(1) && x <= Duration::from_secs(17), "{x:?}");
        }
    }
}
