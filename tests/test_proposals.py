"Tests for erret.proposals: RPN shapes, losses, training step, proposal recall and matching on hand-made boxes."
import pytest, torch
from torchvision.models.detection.image_list import ImageList
from erret.core import ErretError, seed_everything
from erret.encoders import SmallCNN
from erret.proposals import (ProposalConfig, RPN, BoxImages, collate_boxes, rpn_loss, propose, proposal_recall,
                             match_proposals, random_boxes, anchor_boxes)

torch.set_num_threads(1)


def tiny_rpn(**kw):
    torch.manual_seed(0)
    return RPN(SmallCNN(widths=(8, 16, 16), strides=(2, 2, 2)), ProposalConfig.smoke(**kw))


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    ims = torch.randint(0, 256, (4, 3, 64, 64), dtype=torch.uint8, generator=g)
    boxes = [torch.tensor([[4., 4, 36, 36]]), torch.tensor([[20., 10, 60, 50], [0, 0, 30, 60]]),
             torch.zeros(0, 4), torch.tensor([[10., 30, 54, 62]])]
    for im, b in zip(ims, boxes):          # paint each box bright so there is something to find
        for x1, y1, x2, y2 in b.long().tolist(): im[:, y1:y2, x1:x2] = 255
    return ims, boxes


def test_shapes_and_anchors(batch):
    ims, boxes = batch
    rpn = tiny_rpn()
    assert rpn.A == 15 and rpn.anchors(64, 64).shape == (960, 4)
    rpn.train()
    props, losses = rpn(ims, boxes)
    assert sorted(losses) == ['loss_objectness', 'loss_rpn_box_reg'] and all(v.dim() == 0 for v in losses.values())
    rpn.eval()
    with torch.no_grad(): props, scores, losses = rpn.detect(ims)
    assert losses == {} and len(props) == 4 and all(p.shape[1] == 4 and len(p) == len(s) for p, s in zip(props, scores))
    out = propose(rpn, ims, top_n=7, batch_size=3, device='cpu')
    assert [len(p) for p in out] == [7] * 4 and all((p >= 0).all() and (p <= 64).all() for p in out)
    assert rpn.rpn._post_nms_top_n['testing'] == ProposalConfig.smoke().post_nms_top_n
    assert anchor_boxes(rpn, 30).shape == (30, 4)


def test_same_as_torchvision_forward(batch):
    ims, boxes = batch
    rpn = tiny_rpn().train()
    fm = rpn.features(ims)
    torch.manual_seed(3); ref_b, ref_l = rpn.rpn(ImageList(ims, [(64, 64)] * 4), {'0': fm}, [{'boxes': b} for b in boxes])
    torch.manual_seed(3); my_b, my_l = rpn(ims, boxes)
    for a, b in zip(ref_b, my_b): torch.testing.assert_close(a, b)
    for k in ref_l: torch.testing.assert_close(ref_l[k], my_l[k])


def test_frozen_backbone_gets_no_gradient(batch):
    ims, boxes = batch
    rpn = tiny_rpn().train()
    assert not rpn.backbone.training
    rpn_loss(rpn, {'images': ims, 'boxes': boxes})['loss'].backward()
    assert all(p.grad is None for p in rpn.backbone.parameters())
    assert all(p.grad is not None for p in rpn.rpn.head.parameters())
    free = tiny_rpn(freeze_backbone=False).train()
    assert free.backbone.training
    rpn_loss(free, {'images': ims, 'boxes': boxes})['loss'].backward()
    assert all(p.grad is not None for p in free.backbone.parameters())


def test_training_steps_reduce_the_loss(batch):
    ims, boxes = batch
    seed_everything(0)
    rpn = tiny_rpn().train()
    b = collate_boxes([BoxImages(ims, boxes)[i] for i in range(4)])
    opt = torch.optim.AdamW([p for p in rpn.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(25):
        loss = rpn_loss(rpn, b)['loss']
        opt.zero_grad(); loss.backward(); opt.step(); losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.6 * sum(losses[:5]) / 5, losses


def test_match_proposals():
    t = torch.tensor([[10., 10, 30, 30]])
    p = torch.tensor([[12., 10, 32, 30], [11., 10, 31, 30], [40., 40, 60, 60], [10., 10, 30, 30]])
    # IoUs: 18/22 = 0.818, 19/21 = 0.905, 0, 1
    assert match_proposals(p, t).tolist() == [True, True, False, True]
    assert match_proposals(p, t, pos_iou=0.85).tolist() == [False, True, False, True]
    assert match_proposals(p, t, pos_iou=1.0).tolist() == [False] * 4          # strictly greater
    assert match_proposals(p, torch.zeros(0, 4)).tolist() == [False] * 4
    assert match_proposals(torch.zeros(0, 4), t).shape == (0,)
    two = torch.tensor([[10., 10, 30, 30], [40., 40, 60, 60]])
    assert match_proposals(p, two).tolist() == [True, True, True, True]        # any target counts


def test_proposal_recall():
    gts = [torch.tensor([[10., 10, 30, 30], [40., 40, 60, 60]]), torch.tensor([[0., 0, 64, 64]])]
    p1 = torch.tensor([[11., 10, 31, 30], [0., 0, 5, 5]])
    assert proposal_recall([p1, p1], gts) == pytest.approx(1 / 3)
    assert proposal_recall([p1, torch.tensor([[0., 0, 64, 50]])], gts) == pytest.approx(2 / 3)   # IoU 50/64 >= 0.5
    assert proposal_recall([p1, torch.tensor([[0., 0, 64, 50]])], gts, iou=0.8) == pytest.approx(1 / 3)
    assert proposal_recall([p1.flip(0), gts[1]], gts, top_n=1) == pytest.approx(1 / 3)           # only the first proposal
    assert proposal_recall([gts[0], gts[1]], gts, iou=1.0) == 1.0
    assert proposal_recall([torch.zeros(0, 4), torch.zeros(0, 4)], gts) == 0.0


def test_clear_errors(batch):
    ims, boxes = batch
    rpn = tiny_rpn()
    with pytest.raises(ErretError, match=r'expected images as a tensor \(B, 3, H, W\)'): rpn(ims[0])
    with pytest.raises(ErretError, match='3 target box tensors for a batch of 4'): rpn(ims, boxes[:3])
    with pytest.raises(ErretError, match=r'targets\[1\]: expected \(n, 4\)'): rpn(ims, [boxes[0], torch.zeros(2, 5), boxes[2], boxes[3]])
    with pytest.raises(ErretError, match='1 proposal lists for 2 images'): proposal_recall([torch.zeros(1, 4)], [torch.zeros(1, 4)] * 2)
    with pytest.raises(ErretError, match='no ground-truth boxes'): proposal_recall([torch.zeros(1, 4)], [torch.zeros(0, 4)])
    with pytest.raises(ErretError, match=r'target_boxes: expected \(n, 4\)'): match_proposals(torch.zeros(1, 4), torch.zeros(4))
    with pytest.raises(ErretError, match='3 images but 2 box tensors'): BoxImages(ims[:3], boxes[:2])
    with pytest.raises(ErretError, match=r'wh must be \(K, 2\)'): random_boxes(3, wh=torch.zeros(0, 2))


def test_random_boxes():
    b = random_boxes(1000, (48, 64), seed=2)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    assert (b[:, :2] >= 0).all() and (b[:, 2] <= 64 + 1e-4).all() and (b[:, 3] <= 48 + 1e-4).all()
    frac = w * h / (48 * 64)
    assert frac.min() > 0.09 and frac.max() < 0.91
    torch.testing.assert_close(random_boxes(5, seed=1), random_boxes(5, seed=1))
    wh = torch.tensor([[10., 20], [30, 5]])
    rb = random_boxes(50, 64, wh=wh)
    assert set(map(tuple, (rb[:, 2:] - rb[:, :2]).round().tolist())) <= {(10., 20.), (30., 5.)}
