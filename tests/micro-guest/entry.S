/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PVH entry of the micro guest.  Cloud Hypervisor (and QEMU -kernel) jump to
 * pvh_start in 32-bit protected mode, paging off, %ebx = hvm_start_info.
 * We identity-map the first MAP_GIB GiB with 2 MiB pages (1 GiB pages
 * triple-fault under this host's kvm_pvm), enter long mode and call
 * guest_main(start_info).
 */
#define MAP_GIB 16

	.section .note.Xen, "a", @note
	.balign 4
	.long 4			/* namesz: "Xen\0" */
	.long 4			/* descsz */
	.long 18		/* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long pvh_start

	.section .text.entry, "ax"
	.code32
	.globl pvh_start
pvh_start:
	cli
	cld
	movl %ebx, %esi
	movl $stack_top, %esp

	/* PML4 and PDPT: zero them (RAM is fresh, but be explicit). */
	movl $pml4, %edi
	xorl %eax, %eax
	movl $(2 * 4096 / 4), %ecx
	rep stosl

	movl $pdpt, %eax
	orl $0x3, %eax
	movl %eax, pml4

	/* pdpt[i] = pd + i * 4096 | present | writable */
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $12, %eax
	addl $pd, %eax
	orl $0x3, %eax
	movl %eax, pdpt(, %ecx, 8)
	movl $0, pdpt + 4(, %ecx, 8)
	incl %ecx
	cmpl $MAP_GIB, %ecx
	jb 1b

	/* pd[j] = j * 2 MiB | present | writable | page size */
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax
	movl %eax, pd(, %ecx, 8)
	movl %ecx, %eax
	shrl $11, %eax
	movl %eax, pd + 4(, %ecx, 8)
	incl %ecx
	cmpl $(MAP_GIB * 512), %ecx
	jb 2b

	movl %cr4, %eax
	orl $(1 << 5), %eax	/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xc0000080, %ecx	/* EFER */
	rdmsr
	orl $(1 << 8), %eax	/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax	/* PG | PE */
	movl %eax, %cr0
	lgdt gdt_desc
	ljmp $0x08, $long_entry

	.code64
long_entry:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movq $stack_top, %rsp
	movl %esi, %edi
	call guest_main
3:	hlt
	jmp 3b

	.section .rodata
	.balign 8
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08: 64-bit code */
	.quad 0x00cf92000000ffff	/* 0x10: data */
gdt_end:
gdt_desc:
	.word gdt_end - gdt - 1
	.long gdt

	.section .bss
	.balign 4096
pml4:	.skip 4096
pdpt:	.skip 4096
pd:	.skip MAP_GIB * 4096
	.balign 16
	.skip 16384
stack_top:
