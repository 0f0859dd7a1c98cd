# GLAG on your own small images, both stages in one command (to point it at
# your data, write your own stage files: configs/custom/_base_/folder_lt.py):
#     python tools/train.py configs/custom/glag_r20_folder_32px.py
custom_imports = dict(imports=['glag_mm'], allow_failed_imports=False)
stages = [
    dict(name='stage1', config='graloss_r20_folder_32px.py'),
    dict(name='stage2', config='afg_r20_folder_32px.py', init_from='stage1'),
]
