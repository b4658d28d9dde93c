"""The promotion job: plan, stage, verify, publish (or fail and publish nothing).

1. **Plan** the accepted intake instances and open the release (a re-run of the
   same plan resumes its staging release, or does nothing if it was published).
2. **Stage** every instance not staged yet (:mod:`dicomhub.promote.stage`).
3. **Verify**: plan it again (intake must not have changed meanwhile), compare the
   staged items with it, and read every public blob back to compare its sha256.
4. **Write the manifest** to the public store.
5. **Publish** in one public-database transaction: the collection, patients,
   studies, series and instances, then the catalogue counts of the release are
   compared with intake's, and only then is the release marked published.

A :class:`~dicomhub.promote.verify.PromotionMismatch` fails the release and
withdraws its staged blobs.  Any other error (a store or database outage, a
kill, a cancel) leaves the release ``staging``: running the promotion again
resumes it.  Either way the catalogue holds no row of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from dicomhub.core.auth import audit
from dicomhub.core.db import Release, ReleaseItem, ReleaseState, session_scope, utcnow
from dicomhub.core.jobs import JobContext
from dicomhub.promote import release as releases
from dicomhub.promote.catalog import CatalogueWriter, upsert_collection
from dicomhub.promote.context import PromotionContext
from dicomhub.promote.params import PromoteParams, parse_params
from dicomhub.promote.plan import Plan, make_plan
from dicomhub.promote.recipe import load_recipe, uid_secret
from dicomhub.promote.release import Opened
from dicomhub.promote.stage import SecondPass, stage_all
from dicomhub.promote.verify import (
    PromotionMismatch,
    check_staged,
    compare_counts,
    public_counts,
    verify_blobs,
)

LOGGER = logging.getLogger(__name__)

Progress = Callable[[int, int | None, str], None]


def _no_progress(done: int, total: int | None = None, message: str = "") -> None:
    return None


def _never() -> None:
    return None


def promote_job(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """The ``promote`` job kind: runs in a thread or on a dask worker alike."""
    parsed = parse_params(params)
    context = PromotionContext.from_env(ctx.env)
    try:
        return run_promotion(
            context,
            parsed,
            progress=ctx.progress,
            between=ctx.raise_if_cancelled,
            job_id=ctx.job_id,
        )
    finally:
        context.close()


def run_promotion(
    context: PromotionContext,
    params: PromoteParams,
    *,
    progress: Progress = _no_progress,
    between: Callable[[], None] = _never,
    job_id: str | None = None,
) -> dict[str, Any]:
    """Promote one collection (or some of its series); the release's summary."""
    recipe = load_recipe(params.recipe_toml, context.uid_root, uid_secret(context.secret))
    with context.intake_db.sessions() as session:
        plan = make_plan(session, params.collection, params.series)
    with session_scope(context.public_db.sessions) as session:
        release_id, opened = releases.open_release(
            session, plan, recipe, actor=params.actor, job_id=job_id
        )
        stale = releases.superseded(session, release_id) if opened is Opened.NEW else []
    for old in stale:
        releases.fail_release(
            context.public_db.sessions,
            context.public_store,
            old,
            f"superseded by release {release_id}: intake changed before it was published",
        )
    LOGGER.info(
        "release %d of %s (%s): %s",
        release_id,
        plan.collection.name,
        opened.value,
        plan.counts.describe(),
    )
    if opened is not Opened.UNCHANGED:
        try:
            _stage_verify_publish(
                context, params, plan, release_id, SecondPass(recipe), progress, between
            )
        except PromotionMismatch as exc:
            releases.fail_release(
                context.public_db.sessions, context.public_store, release_id, exc.message
            )
            raise
        except Exception as exc:
            LOGGER.warning("release %d stopped, resumable: %s", release_id, exc)
            releases.record_error(context.public_db.sessions, release_id, f"stopped: {exc}")
            raise
    return summary(context, release_id, opened, plan)


def _stage_verify_publish(
    context: PromotionContext,
    params: PromoteParams,
    plan: Plan,
    release_id: int,
    second: SecondPass,
    progress: Progress,
    between: Callable[[], None],
) -> None:
    total = 2 * len(plan.items)
    with context.public_db.sessions() as session:
        already = releases.staged(session, release_id)
    todo = [item for item in plan.items if item.sop_instance_uid not in already]
    base = len(plan.items) - len(todo)
    progress(base, total, "staging")
    stage_all(
        context,
        second,
        release_id,
        todo,
        workers=params.workers,
        progress=lambda n: progress(base + n, None, "staging"),
        between=between,
    )
    between()
    with context.intake_db.sessions() as session:
        again = make_plan(session, params.collection, params.series)
    if again.digest(second.recipe.recipe_hash()) != plan.digest(second.recipe.recipe_hash()):
        raise PromotionMismatch(
            f"intake collection {plan.collection.name!r} changed during the promotion; "
            "run it again to promote what intake holds now"
        )
    with context.public_db.sessions() as session:
        items = releases.load_items(session, release_id)
    check_staged(plan, items)
    progress(len(plan.items), total, "verifying")
    verify_blobs(
        context.public_store,
        items,
        workers=params.workers,
        progress=lambda n: progress(len(plan.items) + n, None, "verifying"),
    )
    between()
    progress(total, total, "publishing")
    _publish(context, plan, release_id, items, params.actor)


def _publish(
    context: PromotionContext, plan: Plan, release_id: int, items: list[ReleaseItem], actor: str
) -> None:
    """Manifest first, then every catalogue row and the release flip in one transaction."""
    with context.public_db.sessions() as session:
        release = session.get(Release, release_id)
        assert release is not None
        manifest = releases.manifest_bytes(release, items, plan.counts)
    key = releases.manifest_key(release_id)
    info = context.public_store.put(key, manifest)
    with session_scope(context.public_db.sessions) as session:
        release = session.get(Release, release_id, with_for_update=True)
        assert release is not None
        if release.state != ReleaseState.STAGING.value:
            LOGGER.info("release %d is already %s", release_id, release.state)
            return
        collection_id = upsert_collection(session, plan.collection)
        CatalogueWriter(session, collection_id, items).write()
        session.flush()
        compare_counts(
            plan.counts,
            public_counts(session, release_id, collection_id),
            "intake",
            "the public catalogue",
        )
        _mark_published(session, release, plan, items, key, info.sha256)
        audit(
            session,
            actor or "promote",
            "release.publish",
            "release",
            release_id,
            "promote",
            {"collection": plan.collection.name, **plan.counts.to_dict()},
        )


def _mark_published(
    session: Session, release: Release, plan: Plan, items: list[ReleaseItem], key: str, sha: str
) -> None:
    counts = plan.counts
    release.state = ReleaseState.PUBLISHED.value
    release.published_at = utcnow()
    release.patients, release.studies = counts.patients, counts.studies
    release.series, release.instances = counts.series, counts.instances
    release.total_size = sum(item.size for item in items)
    release.manifest_key, release.manifest_sha256 = key, sha
    release.error = None
    # The headers now live in the catalogue; the items keep what the manifest lists.
    session.execute(
        update(ReleaseItem).where(ReleaseItem.release_id == release.id).values(header=None)
    )


def summary(
    context: PromotionContext, release_id: int, opened: Opened, plan: Plan
) -> dict[str, Any]:
    """The job's result: the release, its counts on both sides and its manifest."""
    with context.public_db.sessions() as session:
        release = session.get(Release, release_id)
        assert release is not None
        public = {
            "patients": release.patients,
            "studies": release.studies,
            "series": release.series,
            "instances": release.instances,
        }
        return {
            "release_id": release_id,
            "collection": release.collection,
            "state": release.state,
            "opened": opened.value,
            "recipe_hash": release.recipe_hash,
            "intake_counts": plan.counts.to_dict(),
            "public_counts": public,
            "held_back": plan.held,
            "total_size": release.total_size,
            "manifest_key": release.manifest_key,
            "manifest_sha256": release.manifest_sha256,
        }
