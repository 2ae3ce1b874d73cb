"""The manual review queue API: what a vendor outage left waiting, and the operator's choices."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from audiences.api.profiles import PolicyAllows
from campaigns.models import ReviewItem
from campaigns.review import selectors, services
from marketerapi.api import ActorMixin, CursorPagination, problem_responses

_FAILURES = {
    401: "No token, or an unknown, expired or revoked one.",
    403: "Your roles do not allow this, or the campaign belongs to another team (`permission_denied`). Audited.",
    404: "No such review item in your token's environment (`review_item_not_found`).",
    409: "The item was already retried or cancelled (`review_item_closed`).",
}
ITEM_ID = OpenApiParameter("item_id", int, OpenApiParameter.PATH, description="The review item's `id`.")


class ReviewItemSerializer(serializers.ModelSerializer):
    campaign = serializers.SerializerMethodField()
    destination = serializers.SerializerMethodField()

    class Meta:
        model = ReviewItem
        fields = ("id", "campaign", "destination", "recipients", "why", "state", "since", "resolved_at")

    def get_campaign(self, item: ReviewItem) -> dict[str, Any]:
        return {"id": item.campaign_id, "name": item.campaign.name, "owner_team": item.campaign.owner_team.name}

    def get_destination(self, item: ReviewItem) -> dict[str, Any]:
        return {"id": item.destination_id, "name": item.destination.name, "adapter": item.destination.adapter}


class ReviewPagination(CursorPagination):
    ordering = "-id"


class ReviewItemList(ActorMixin, generics.ListAPIView):
    serializer_class = ReviewItemSerializer
    pagination_class = ReviewPagination
    permission_classes = [permissions.IsAuthenticated, PolicyAllows]

    def get_queryset(self) -> Any:
        if getattr(self, "swagger_fake_view", False):
            return ReviewItem.objects.none()
        return selectors.review_item_list(actor=self.actor)

    @extend_schema(
        operation_id="review_items_list",
        summary="The manual review queue",
        description="Sends a vendor outage left waiting after the retry budget: campaign, destination, how many "
        "recipients, why, since when. Retry them once the vendor is back, cancel them, or download the payload "
        "to hand it over by other means.\n\n**Permission:** any role (`review_item.view`).",
        responses={200: ReviewItemSerializer(many=True), **problem_responses(400, 401, 403, failures=_FAILURES)},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.list(request, *args, **kwargs)


class _ItemView(ActorMixin, APIView):
    def _item(self, item_id: str) -> ReviewItem:
        return selectors.review_item_get(actor=self.actor, item_id=int(item_id))


class ReviewItemRetry(_ItemView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "review_item.retry"}

    @extend_schema(
        operation_id="review_items_retry",
        summary="Retry the waiting sends now",
        description="Queues the deferred sends again and starts a send job; each recipient is sent once. "
        "**Permission:** the campaign's owning team, a share of change, or admin. Audited.",
        parameters=[ITEM_ID],
        request=None,
        responses={200: ReviewItemSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
    )
    def post(self, request: Request, item_id: str) -> Response:
        item = services.review_item_retry(actor=self.actor, item=self._item(item_id))
        return Response(ReviewItemSerializer(selectors.review_item_get(actor=self.actor, item_id=item.pk)).data)


class ReviewItemCancel(_ItemView):
    policy_actions: ClassVar[dict[str, str]] = {"POST": "review_item.cancel"}

    @extend_schema(
        operation_id="review_items_cancel",
        summary="Give up on the waiting sends",
        description="The deferred sends are skipped (`cancelled_in_review`). **Permission:** as retry. Audited.",
        parameters=[ITEM_ID],
        request=None,
        responses={200: ReviewItemSerializer, **problem_responses(401, 403, 404, 409, failures=_FAILURES)},
    )
    def post(self, request: Request, item_id: str) -> Response:
        item = services.review_item_cancel(actor=self.actor, item=self._item(item_id))
        return Response(ReviewItemSerializer(selectors.review_item_get(actor=self.actor, item_id=item.pk)).data)


class ReviewItemPayload(_ItemView):
    @extend_schema(
        operation_id="review_items_payload",
        summary="Download the payload of the waiting sends",
        description="The batch the adapter would have sent (recipients with their rendered message), masked "
        "unless your role may see PII (compliance reviewers). Every download is audited "
        "(`review_item.download`).\n\n**Permission:** any role (`review_item.download`, an `export` token).",
        parameters=[ITEM_ID],
        responses={200: serializers.DictField(), **problem_responses(401, 403, 404, failures=_FAILURES)},
    )
    def get(self, request: Request, item_id: str) -> Response:
        return Response(services.review_item_download(actor=self.actor, item=self._item(item_id)))
