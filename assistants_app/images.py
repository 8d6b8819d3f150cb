"""Pictures sent in chats: checked by decoding them, stored once per team and content
with a thumbnail, and turned back into the data URL a provider needs."""

from __future__ import annotations

import base64
import hashlib
import io
from functools import partial, reduce
from operator import or_
from typing import Any

from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from PIL import Image, UnidentifiedImageError

from assistants_app.models import ChatImage, Message
from project.teams.models import Team

MAX_IMAGE_BYTES = 5 * 1024 * 1024
# A small file can decode to a huge bitmap (a 170 KB PNG of 6300x6300 took 300 MB to make
# its thumbnail), so the pixel count is read from the header and checked before anything
# is decoded. A PNG, GIF or WebP is decoded whole: at most 4096x4096 (64 MB as RGBA); the
# provider scales every picture to fit 2048x2048 anyway. A JPEG is decoded at 1/2, 1/4 or
# 1/8 of its size (draft mode) for the thumbnail, so a photo of a larger camera may be
# bigger.
MAX_IMAGE_PIXELS = 4096 * 4096
MAX_JPEG_PIXELS = 64_000_000
THUMBNAIL_SIZE = (480, 480)
FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


class ImageRejected(ValueError):
    """The upload is not a picture we can send; the message says why."""


def _too_large(name: str, kind: str, width: int, height: int, limit: int) -> ImageRejected:
    return ImageRejected(f"{name} is {width}x{height} pixels; the limit for a {kind} is {limit:,} pixels. "
                         "Scale it down and attach it again.")


def _inspect(data: bytes, name: str) -> tuple[str, int, int]:
    """Format and size from the header (Image.open decodes nothing), checked before the
    whole file is read; then verify() reads it through, which a corrupt one fails."""
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind, (width, height) = probe.format or "", probe.size
            if kind not in FORMATS:
                raise ImageRejected(f"{name} is not a PNG, JPEG, GIF or WebP image.")
            limit = MAX_JPEG_PIXELS if kind == "JPEG" else MAX_IMAGE_PIXELS
            if width * height > limit:
                raise _too_large(name, kind, width, height, limit)
            probe.verify()
    except Image.DecompressionBombError as error:
        # Pillow's own guard, at twice its limit, before it gives a size: the picture is far too large.
        raise ImageRejected(f"{name} has far more pixels than the limit of {MAX_IMAGE_PIXELS:,}.") from error
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ImageRejected(f"{name} is not a PNG, JPEG, GIF or WebP image ({type(error).__name__}).") from error
    return FORMATS[kind], width, height


def _thumbnail(data: bytes) -> tuple[bytes, str]:
    with Image.open(io.BytesIO(data)) as picture:
        picture.thumbnail(THUMBNAIL_SIZE)  # a JPEG is decoded in draft mode, at a fraction of its size
        out = io.BytesIO()
        if picture.mode in ("RGBA", "LA", "P"):
            picture.convert("RGBA").save(out, "PNG", optimize=True)
            return out.getvalue(), "png"
        picture.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue(), "jpg"


def chat_image_store(*, team: Team, data: bytes, name: str) -> ChatImage:
    """Check and store one picture for the team (the same bytes twice are stored once).
    Raises ImageRejected with a message for the page."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejected(f"{name} is larger than 5 MB.")
    mime, width, height = _inspect(data, name)
    digest = hashlib.sha256(data).hexdigest()
    existing = ChatImage.objects.filter(team=team, sha256=digest).first()
    if existing is not None:
        return existing
    thumb, thumb_ext = _thumbnail(data)
    extension = mime.split("/")[1].replace("jpeg", "jpg")
    image = ChatImage(team=team, sha256=digest, mime=mime, width=width, height=height, size=len(data))
    image.image.save(f"{digest}.{extension}", ContentFile(data), save=False)
    image.thumbnail.save(f"{digest}.{thumb_ext}", ContentFile(thumb), save=False)
    try:
        with transaction.atomic():
            image.save()
    except IntegrityError:  # the same picture, stored a moment ago by another request
        image.image.delete(save=False)
        image.thumbnail.delete(save=False)
        return ChatImage.objects.get(team=team, sha256=digest)
    return image


def image_attachment(image: ChatImage, name: str) -> dict[str, Any]:
    return {"type": "image", "image_id": image.pk, "name": name[:200], "mime": image.mime, "width": image.width,
            "height": image.height}


def image_data_url(attachment: dict[str, Any], *, team_id: int) -> str | None:
    """The data URL to send for an image attachment of one of the team's messages, or
    None when its picture is gone."""
    if attachment.get("data_url"):
        return str(attachment["data_url"])
    image_id = attachment.get("image_id")
    image = ChatImage.objects.filter(pk=int(image_id), team_id=team_id).first() if image_id is not None else None
    if image is None:
        return None
    with image.image.open("rb") as stored:
        return f"data:{image.mime};base64,{base64.b64encode(stored.read()).decode()}"


def image_ids_in(attachments_lists: list[list[dict[str, Any]]]) -> set[int]:
    return {int(a["image_id"]) for attachments in attachments_lists for a in attachments
            if a.get("type") == "image" and a.get("image_id") is not None}


def chat_images_forget_unused(*, team_id: int, image_ids: set[int]) -> int:
    """Delete those of the team's pictures that no message shows any more (their
    thread was deleted), with their files. Returns how many went."""
    if not image_ids:
        return 0
    # One pass over the team's messages for all the pictures, not one per picture.
    showing = reduce(or_, (Q(attachments__contains=[{"image_id": image_id}]) for image_id in image_ids))
    still_shown = image_ids_in(list(Message.objects.filter(showing, team_id=team_id).values_list("attachments", flat=True)))
    unused = image_ids - still_shown
    deleted = 0
    for image in ChatImage.objects.filter(team_id=team_id, pk__in=unused):
        image.delete()  # the files go after the commit (see _delete_files)
        deleted += 1
    return deleted


@receiver(post_delete, sender=ChatImage)
def _delete_files(sender: type[ChatImage], instance: ChatImage, **kwargs: Any) -> None:
    """A picture's row is gone (forgotten, or its team deleted): remove its files once
    that is committed."""
    for stored in (instance.image, instance.thumbnail):
        if stored.name:
            storage, name = stored.storage, stored.name
            transaction.on_commit(partial(storage.delete, name))
